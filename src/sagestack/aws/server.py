"""The HTTP server of ``sagestack serve-aws``: one endpoint for every service, as ``AWS_ENDPOINT_URL`` expects.

Each request's SigV4 signature is verified first; its signing scope names the service, the protocol then
names the operation (:mod:`sagestack.aws.operations`), and the operation's handler answers. Everything a
client can get wrong is answered with an AWS-shaped 4xx; a 500 (``InternalFailure``) means a bug here, and
its traceback goes to stderr.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from sagestack.aws import operations, sigv4
from sagestack.aws.backends import Backends
from sagestack.aws.defaults import DEFAULT_MAX_JOBS, DEFAULT_MAX_QUERIES, DEFAULT_QUERY_TIMEOUT
from sagestack.aws.identity import ACCESS_KEY_VAR, SECRET_KEY_VAR, has_explicit_credentials
from sagestack.aws.protocol import AwsError, Request, Response, error_response
from sagestack.errors import ConfigError

# A single request body is read into memory: larger uploads go through multipart (boto3, the SageMaker SDK,
# awswrangler and the aws CLI switch to it at 8 MiB), so this bounds a request's memory, not what clients do.
MAX_BODY = 128 * 1024 * 1024
CHUNK = 1024 * 1024  # a streamed body is sent in pieces of this size
MAX_LINE = 8192  # the longest chunk-size or trailer line of a chunked body
SOCKET_TIMEOUT = 60  # seconds a connection may stay silent mid-request (a short body holds no thread for good)


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


_TOO_LARGE = AwsError("EntityTooLarge", f"a request body may be at most {MAX_BODY} bytes here: upload larger "
                      "objects in parts (multipart upload)")
_MALFORMED = AwsError("IncompleteBody", "the request's Content-Length or chunk sizes are malformed")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and `Expect: 100-continue` answered as botocore expects
    server_version = "sagestack-aws"
    timeout = SOCKET_TIMEOUT
    server: "_Server"

    def handle_expect_100(self) -> bool:
        # `100 Continue` is sent by _serve once the request's signature headers are checked: a client that
        # cannot sign is never asked for its body.
        self._expect_continue = True
        return True

    def _body_length(self) -> int | None:
        """The Content-Length (None for a chunked body).

        Raises:
            AwsError: a malformed or negative length, or one over :data:`MAX_BODY`.
        """
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _MALFORMED from None
        if length < 0:
            raise _MALFORMED
        if length > MAX_BODY:
            raise _TOO_LARGE
        return length

    def _read_body(self, length: int | None) -> bytes:
        """The request body: ``length`` bytes, or a ``Transfer-Encoding: chunked`` body joined (``None``).

        Raises:
            AwsError: a malformed chunk, or a body over :data:`MAX_BODY`.
        """
        if length is not None:
            return self.rfile.read(length)
        body = bytearray()
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise _MALFORMED from None
            if size < 0 or len(line) > MAX_LINE:
                raise _MALFORMED
            if size == 0:
                while (trailer := self.rfile.readline(MAX_LINE + 1)) not in (b"\r\n", b"\n", b""):
                    if len(trailer) > MAX_LINE:
                        raise _MALFORMED
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise _TOO_LARGE
            body += self.rfile.read(size)
            self.rfile.readline(MAX_LINE + 1)

    def _serve(self) -> None:
        expect_continue, self._expect_continue = getattr(self, "_expect_continue", False), False
        target = self.path
        if "://" in target.partition("?")[0]:  # absolute-form request target (through a proxy)
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        raw_path, _, query = target.partition("?")
        request = Request(self.command, raw_path, query, self.headers)
        try:
            length = self._body_length()
            # Before any body is read (or asked for): a request that is not signed with the home's key gets
            # its 403 without the server holding its body.
            sigv4.verify_headers(request, self.server.api.backends.identity)
            if expect_continue:
                self.send_response_only(100)
                self.end_headers()
            request.body = self._read_body(length)
        except AwsError as error:  # the rest of the request cannot be (or is not) read: answer and close
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

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        if ":" in address[0]:  # an IPv6 address (``::1``, ``::``)
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(home: Path, host: str, port: int, *, on_ready: Callable[[str], None] | None = None,
          access_log: bool = False, max_jobs: int = DEFAULT_MAX_JOBS, max_queries: int = DEFAULT_MAX_QUERIES,
          query_timeout: float = DEFAULT_QUERY_TIMEOUT) -> None:
    """Serve the AWS API for ``home`` on ``host:port`` until SIGINT or SIGTERM.

    Args:
        home: the sagestack home (state under ``home/aws``).
        host: the address to listen on; beyond loopback the key pair must be set explicitly.
        port: the TCP port (0: any free one).
        on_ready: called with the endpoint URL once the server listens.
        access_log: print a line per request on stderr.
        max_jobs: how many SageMaker jobs run at once (more wait InProgress).
        max_queries: how many Athena queries run at once (more are refused, as Athena's quota refuses them).
        query_timeout: seconds an Athena query may run before it fails.

    Raises:
        ConfigError: a non-loopback ``host`` without explicit credentials, an address that cannot be bound, or
            another serve-aws serving ``home``.
    """
    if not is_loopback(host) and not has_explicit_credentials():
        raise ConfigError(f"listening on {host} (beyond loopback) needs credentials you choose: set "
                          f"{ACCESS_KEY_VAR} and {SECRET_KEY_VAR}, or keep --host 127.0.0.1")
    try:
        server = _Server((host, port), _Handler)
    except OverflowError:  # the socket module's answer to a port outside 0-65535
        raise ConfigError(f"cannot listen on {host}:{port} (a port is 0 to 65535); pass another --port") from None
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --host or "
                          "--port") from None
    # Only once the port is ours: opening the backends resets what a previous server left running.
    try:
        backends = Backends.open(home, max_jobs, max_queries, query_timeout)
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
