"""The HTTP server of ``sagestack serve-aws``: one endpoint for every service, as ``AWS_ENDPOINT_URL`` expects.

Each request's SigV4 signature is verified first; its signing scope names the service, the protocol then
names the operation (:mod:`sagestack.aws.operations`), and the operation's handler answers. Everything a
client can get wrong is answered with an AWS-shaped 4xx; a 500 (``InternalFailure``) means a bug here, and
its traceback goes to stderr.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from sagestack.aws import operations, sigv4
from sagestack.aws.backends import DEFAULT_MAX_JOBS, Backends
from sagestack.aws.identity import ACCESS_KEY_VAR, SECRET_KEY_VAR, has_explicit_credentials
from sagestack.aws.protocol import AwsError, Request, Response, error_response
from sagestack.errors import ConfigError

# A single request body is read into memory: larger uploads go through multipart (every SDK does above 8 MB).
MAX_BODY = 512 * 1024 * 1024
CHUNK = 1024 * 1024  # a streamed body is sent in pieces of this size


class AwsApi:
    """Requests in, responses out: signature, routing, errors (no HTTP server in here, so tests call it too)."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends

    def handle(self, request: Request) -> Response:
        """The response to ``request``: the operation's, or its AWS-shaped error."""
        service = _claimed_service(request)
        try:
            scope = sigv4.verify(request, self.backends.identity)
            request.service, request.region = scope.service, scope.region
            return operations.find(scope.service, request).handler(self.backends, request)
        except AwsError as error:
            return error_response(error, service, request)
        except Exception:  # a bug: say so the AWS way (clients retry 500s) and keep the traceback
            traceback.print_exc(file=sys.stderr)
            error = AwsError("InternalFailure", "sagestack serve-aws failed on this request; its log has the "
                             "traceback", 500)
            return error_response(error, service, request)


def _claimed_service(request: Request) -> str:
    """The service the request says it is for (to shape an error before its signature is checked)."""
    try:
        return sigv4.parse_authorization(request.headers.get("Authorization"))[0].service
    except AwsError:
        return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and `Expect: 100-continue` answered as botocore expects
    server_version = "sagestack-aws"
    server: "_Server"

    def _read_body(self) -> bytes:
        """The request body (``Transfer-Encoding: chunked`` joined).

        Raises:
            AwsError: a malformed length or chunk, or a body over :data:`MAX_BODY`.
        """
        too_large = AwsError("EntityTooLarge", f"a request body may be at most {MAX_BODY} bytes here: upload larger "
                             "objects in parts")
        try:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                body = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(body)
                    if len(body) + size > MAX_BODY:
                        raise too_large
                    body += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise AwsError("IncompleteBody", "the request's Content-Length or chunk sizes are malformed") from None
        if length < 0 or length > MAX_BODY:
            raise too_large
        return self.rfile.read(length)

    def _serve(self) -> None:
        target = self.path
        if "://" in target.partition("?")[0]:  # absolute-form request target (through a proxy)
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        raw_path, _, query = target.partition("?")
        request = Request(self.command, raw_path, query, self.headers)
        try:
            request.body = self._read_body()
        except AwsError as error:  # the rest of the request cannot be read: answer and close
            response = error_response(error, _claimed_service(request), request)
            self.close_connection = True
        else:
            response = self.server.api.handle(request)
        try:
            self.send_response(response.status)
            headers = {"x-amz-request-id": request.request_id, **response.headers}
            if "Content-Length" not in headers or self.command != "HEAD":
                headers["Content-Length"] = str(response.length if response.stream else len(response.body))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            if response.stream:
                left = response.length
                while left > 0:
                    chunk = response.stream.read(min(left, CHUNK))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
            elif response.body:
                self.wfile.write(response.body)
        finally:
            if response.stream:
                response.stream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _serve

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's signature
        if self.server.access_log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: AwsApi
    access_log: bool = False


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(home: Path, host: str, port: int, *, on_ready: Callable[[str], None] | None = None,
          access_log: bool = False, max_jobs: int = DEFAULT_MAX_JOBS) -> None:
    """Serve the AWS API for ``home`` on ``host:port`` until SIGINT or SIGTERM.

    Args:
        home: the sagestack home (state under ``home/aws``).
        host: the address to listen on; beyond loopback the key pair must be set explicitly.
        port: the TCP port (0: any free one).
        on_ready: called with the endpoint URL once the server listens.
        access_log: print a line per request on stderr.
        max_jobs: how many SageMaker jobs run at once (more wait InProgress).

    Raises:
        ConfigError: a non-loopback ``host`` without explicit credentials, an address that cannot be bound, or
            another serve-aws serving ``home``.
    """
    if not is_loopback(host) and not has_explicit_credentials():
        raise ConfigError(f"listening on {host} (beyond loopback) needs credentials you choose: set "
                          f"{ACCESS_KEY_VAR} and {SECRET_KEY_VAR}, or keep --host 127.0.0.1")
    try:
        server = _Server((host, port), _Handler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None
    # Only once the port is ours: opening the backends resets what a previous server left running.
    try:
        backends = Backends.open(home, max_jobs)
    except BaseException:
        server.server_close()
        raise
    server.api, server.access_log = AwsApi(backends), access_log

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if on_ready:
            bound_host, bound_port = server.server_address[:2]
            on_ready(f"http://{'[' + bound_host + ']' if ':' in bound_host else bound_host}:{bound_port}")
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        backends.close()
