"""Dataset resolution order and checksum-verified download from a loopback HTTP server."""

import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from sagestack.config import Settings, load_settings
from sagestack.data.atomic import sha256_file
from sagestack.data.embedded import EMBEDDED_SHA256
from sagestack.data.resolver import resolve_dataset
from sagestack.errors import ConfigError, DataError


@pytest.fixture
def http_root(tmp_path):
    """Serve a folder over HTTP on 127.0.0.1; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_order_explicit_then_env_then_shared(tmp_path):
    explicit, env_dir, shared = tmp_path / "mine.csv", tmp_path / "env", tmp_path / "shared"
    for directory in (env_dir, shared):
        directory.mkdir()
        (directory / "reviews_balanced.csv").write_text("x")
    explicit.write_text("x")
    plain = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "h")
    with_env = load_settings(cwd=tmp_path, environ={"SAGESTACK_DATA": str(env_dir)}, home=tmp_path / "h")

    assert resolve_dataset(explicit, settings=with_env, search_dirs=[shared]).source == "explicit"
    assert resolve_dataset(settings=with_env, search_dirs=[shared]).path == env_dir / "reviews_balanced.csv"
    found = resolve_dataset(settings=plain, search_dirs=[shared])
    assert (found.source, found.path) == ("shared", shared / "reviews_balanced.csv")


def test_embedded_copy_when_no_shared_folder(settings, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    found = resolve_dataset(settings=settings, search_dirs=[shared])
    assert found.source == "embedded" and found.path.parent == settings.cache_dir / "embedded"
    assert sha256_file(found.path) == EMBEDDED_SHA256["reviews_balanced.csv"]
    assert len(pd.read_csv(found.path)) == 7110
    clarify = resolve_dataset(settings=settings, search_dirs=[], name="reviews_clarify_lab.csv")
    assert clarify.source == "embedded" and len(pd.read_csv(clarify.path)) == 486
    # The shared folder still wins over the embedded copy when it has the file.
    (shared / "reviews_balanced.csv").write_text("x")
    assert resolve_dataset(settings=settings, search_dirs=[shared]).source == "shared"


def test_damaged_embedded_cache_is_rebuilt(settings):
    first = resolve_dataset(settings=settings, search_dirs=[]).path
    first.write_text("tampered")
    again = resolve_dataset(settings=settings, search_dirs=[])
    assert sha256_file(again.path) == EMBEDDED_SHA256["reviews_balanced.csv"]


def test_not_found_message_names_the_data_option(settings):
    with pytest.raises(DataError, match=r"pass --data FILE or a name from `sagestack data list`, set SAGESTACK_DATA"):
        resolve_dataset(settings=settings, search_dirs=[], name="other.csv")


def test_download_verifies_sha256_into_the_cache(tmp_path, http_root):
    root, url = http_root
    payload = b"sentiment,review_body,product_category\n1,good,Dresses\n"
    (root / "data.csv").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    settings = load_settings(
        cwd=tmp_path, environ={"SAGESTACK_DATA_URL": f"{url}/data.csv", "SAGESTACK_DATA_SHA256": digest}, home=tmp_path / "h"
    )
    got = resolve_dataset(settings=settings, search_dirs=[], use_embedded=False)
    assert got.source == "download" and got.path.read_bytes() == payload
    assert got.path.parent == settings.cache_dir / "data"
    again = resolve_dataset(settings=settings, search_dirs=[], use_embedded=False)
    assert again.source == "cache"


def test_checksum_mismatch_keeps_nothing(tmp_path, http_root):
    root, url = http_root
    (root / "data.csv").write_bytes(b"tampered")
    settings = load_settings(
        cwd=tmp_path, environ={"SAGESTACK_DATA_URL": f"{url}/data.csv", "SAGESTACK_DATA_SHA256": "0" * 64}, home=tmp_path / "h"
    )
    with pytest.raises(DataError, match=r"has sha256 [0-9a-f]{64}, expected 0{64}"):
        resolve_dataset(settings=settings, search_dirs=[], use_embedded=False)
    assert not (settings.cache_dir / "data").exists() or not any((settings.cache_dir / "data").iterdir())


def test_unreachable_download_and_nothing_found(tmp_path, http_root):
    _, url = http_root
    missing = load_settings(
        cwd=tmp_path, environ={"SAGESTACK_DATA_URL": f"{url}/nope.csv", "SAGESTACK_DATA_SHA256": "0" * 64}, home=tmp_path / "h"
    )
    with pytest.raises(DataError, match=r"^could not download http://127.0.0.1:\d+/nope.csv \(HTTP 404 File not found\); check the URL"):
        resolve_dataset(settings=missing, search_dirs=[], use_embedded=False)
    nothing = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "h")
    with pytest.raises(DataError, match="dataset reviews_balanced.csv not found"):
        resolve_dataset(settings=nothing, search_dirs=[], use_embedded=False)


def test_config_file_env_and_errors(tmp_path):
    (tmp_path / "sagestack.toml").write_text('home = "state"\ntracking_uri = "http://127.0.0.1:5000"\n')
    settings = load_settings(cwd=tmp_path, environ={})
    assert settings.home == tmp_path / "state" and settings.mlflow_uri == "http://127.0.0.1:5000"
    assert load_settings(cwd=tmp_path, environ={"SAGESTACK_TRACKING_URI": "sqlite:///x.db"}).mlflow_uri == "sqlite:///x.db"
    default = load_settings(cwd=tmp_path / "nowhere", environ={})
    assert default.mlflow_uri == f"sqlite:///{(default.home).resolve() / 'mlflow.db'}"

    (tmp_path / "sagestack.toml").write_text('hme = "typo"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cwd=tmp_path, environ={})
    assert str(info.value) == f"{tmp_path / 'sagestack.toml'}: invalid setting 'hme': Extra inputs are not permitted"


def test_settings_are_one_tree_with_one_flat_name_per_setting(tmp_path):
    from sagestack.config import ENV_VARS, FIELDS

    # The file takes a group's table or the flat names; the environment and overrides use the flat names.
    (tmp_path / "sagestack.toml").write_text('online_store = "redis://127.0.0.1:6379"\n'
                                             '[endpoint]\nvariant = "B"\nworkers = 2\n[review]\ndb = "postgresql://u@h/r"\n')
    settings = load_settings(cwd=tmp_path, environ={"SAGESTACK_WORKERS": "3"}, access_log="off")
    assert settings.feature_store.online == "redis://127.0.0.1:6379" and settings.feature_store.offline == "duckdb"
    assert (settings.endpoint.variant, settings.endpoint.workers, settings.endpoint.access_log) == ("B", 3, "off")
    assert settings.review.db == "postgresql://u@h/r" and settings.value("review_db") == "postgresql://u@h/r"
    # Every setting crosses a process boundary and comes back the same.
    assert Settings.from_env(settings.to_env()) == settings.replace(home=settings.home.resolve(),
                                                                    tracking_uri=settings.mlflow_uri)
    assert set(ENV_VARS.values()) == set(FIELDS) == set(settings.flat())
    assert settings.replace(variant="A").endpoint.variant == "A" and settings.endpoint.variant == "B"
    with pytest.raises(ConfigError, match="invalid setting 'workers': Input should be greater than or equal to 1"):
        settings.replace(workers=0)
    (tmp_path / "sagestack.toml").write_text('[endpoint]\nvarient = "B"\n')
    with pytest.raises(ConfigError, match="invalid setting 'endpoint.varient': Extra inputs are not permitted"):
        load_settings(cwd=tmp_path, environ={})
    (tmp_path / "sagestack.toml").write_text('endpoint = "x"\n')
    with pytest.raises(ConfigError, match="'endpoint' must be a table"):
        load_settings(cwd=tmp_path, environ={"SAGESTACK_WORKERS": "2"})
    (tmp_path / "sagestack.toml").write_text('workers = 2\n[endpoint]\nworkers = 5\n')
    with pytest.raises(ConfigError, match="'workers' is given twice"):
        load_settings(cwd=tmp_path, environ={})
    with pytest.raises(ConfigError, match="replace: unknown settings endpoint"):
        settings.replace(endpoint={"capture": 5})
    (tmp_path / "sagestack.toml").write_text('[feature_store]\nonline = "memcached"\n')
    with pytest.raises(ConfigError, match="sagestack.toml: invalid setting 'online_store': must be sqlite or a"):
        load_settings(cwd=tmp_path, environ={})


def test_pipeline_step_settings_ignore_the_inherited_config_file_and_environment(tmp_path, monkeypatch):
    from sagestack.config import cluster_settings_parameter, settings_from_parameter, settings_parameter

    (tmp_path / "sagestack.toml").write_text('tracking_uri = "http://elsewhere:5000"\ndata_dir = "/nowhere"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGESTACK_TRACKING_URI", "http://also-elsewhere:5000")
    home = tmp_path / "home"
    caller = load_settings(cwd=tmp_path / "elsewhere", environ={}, home=home,
                           online_store="redis://:s3cret@127.0.0.1:6379")
    parameter = settings_parameter(caller)
    # The steps get exactly the caller's settings, none of the step's inherited file or variables.
    step = settings_from_parameter(parameter)
    assert step == caller.replace(home=home.resolve(), tracking_uri=caller.mlflow_uri)
    assert step.data.dir is None and step.mlflow_uri == f"sqlite:///{home.resolve() / 'mlflow.db'}"
    # The password goes nowhere but a file of the user's own; equal settings give the same path (the step cache).
    assert "s3cret" not in parameter and Path(parameter).stat().st_mode & 0o777 == 0o600
    assert settings_parameter(caller) == parameter and Path(parameter).parent == home.resolve() / "pipelines" / "settings"
    assert settings_parameter(caller.replace(online_store="sqlite")) != parameter
    # What only an endpoint reads does not reach the steps: changing it keeps the step cache.
    assert settings_parameter(caller.replace(workers=3, variant="B", access_log="off")) == parameter
    # A cluster pod: its own configuration, with what the run names over it.
    assert settings_from_parameter("").mlflow_uri == "http://also-elsewhere:5000"
    over = settings_from_parameter(cluster_settings_parameter(tracking_uri="http://mlflow:5000", variant=None))
    assert over.mlflow_uri == "http://mlflow:5000" and over.data.dir == Path("/nowhere")
    assert cluster_settings_parameter(tracking_uri=None) == ""
    with pytest.raises(ConfigError, match="cannot read the pipeline's settings file"):
        settings_from_parameter(str(tmp_path / "gone.json"))
    with pytest.raises(ConfigError, match=r"names unknown settings \(SAGESTACK_TRACKNG_URI\); known: SAGESTACK_HOME"):
        settings_from_parameter('{"SAGESTACK_TRACKNG_URI": "http://typo"}')
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ConfigError, match="must be a JSON object of SAGESTACK_"):
        settings_from_parameter(str(tmp_path / "list.json"))


def test_an_unknown_online_store_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="invalid setting 'online_store': must be sqlite or a "
                                          "redis://HOST:PORT URL$"):
        load_settings(cwd=tmp_path, environ={"SAGESTACK_ONLINE_STORE": "mongodb://db:27017"})


def test_endpoint_workers_come_from_the_environment_and_zero_is_refused(tmp_path):
    from sagestack.errors import ConfigError

    assert load_settings(cwd=tmp_path, environ={"SAGESTACK_WORKERS": "3"}).endpoint.workers == 3
    with pytest.raises(ConfigError) as error:
        load_settings(cwd=tmp_path, environ={"SAGESTACK_WORKERS": "0"})
    assert str(error.value) == "defaults: invalid setting 'workers': Input should be greater than or equal to 1"


def test_the_capture_location_is_the_home_folder_an_absolute_folder_or_a_uri(tmp_path):
    home = tmp_path / "home"
    assert load_settings(cwd=tmp_path, environ={}, home=home).capture_location == str(home.resolve() / "capture")
    folder = load_settings(cwd=tmp_path, environ={"SAGESTACK_CAPTURE_URI": "elsewhere/capture"}, home=home)
    assert folder.capture_location == str((Path.cwd() / "elsewhere" / "capture").resolve())
    bucket = load_settings(cwd=tmp_path, environ={"SAGESTACK_CAPTURE_URI": "s3://bucket/endpoint-a"}, home=home)
    assert bucket.capture_location == "s3://bucket/endpoint-a"


def test_a_home_that_is_a_file_is_a_one_line_error_naming_the_option(tmp_path):
    from sagestack.errors import ConfigError

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("mine")
    with pytest.raises(ConfigError) as error:
        load_settings(cwd=tmp_path, environ={}, home=not_a_folder)
    assert str(error.value) == (f"--home: invalid setting 'home': {not_a_folder} exists and is not a folder; "
                                "pass a folder (new or a sagestack home) as --home")
    assert not_a_folder.read_text() == "mine"


def test_settings_cross_a_process_boundary_as_their_environment_and_nothing_else(tmp_path):
    from sagestack.config import Settings

    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "h", online_store="redis://r:6379/0",
                             workers=3, capture=20, data_dir=tmp_path / "data", endpoint_model="reviews-sentiment@b")
    env = settings.to_env()
    assert env["SAGESTACK_HOME"] == str((tmp_path / "h").resolve()) and env["SAGESTACK_WORKERS"] == "3"
    assert env["SAGESTACK_MODEL"] == "reviews-sentiment@b"  # the endpoint's model, the variable k8s and `up` set
    assert env["SAGESTACK_TRACKING_URI"] == settings.mlflow_uri
    (tmp_path / "sagestack.toml").write_text('variant = "B"\n')  # never read by from_env
    received = Settings.from_env(env)
    assert received.to_env() == env and received.endpoint.variant is None and received.data.dir == (tmp_path / "data").resolve()
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"SAGESTACK_WORKERS": "0"})
    assert str(error.value) == "environment: invalid setting 'workers': Input should be greater than or equal to 1"


def test_a_private_file_refuses_a_folder_others_may_read_or_that_is_no_folder(tmp_path):
    from sagestack.data.atomic import private_file
    from sagestack.errors import SagestackError

    blocked = tmp_path / "blocked"
    blocked.write_text("")  # a file where the folder should be
    with pytest.raises(SagestackError) as info:
        private_file("settings", ".json", "{}", folder=blocked)
    assert str(info.value) == f"{blocked} is not a folder of this user's own that only they can read; remove it"
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(SagestackError, match="only they can read; remove it$"):
        private_file("settings", ".json", "{}", folder=shared)
    assert blocked.read_text() == "" and not any(shared.iterdir())  # nothing written
    mine = private_file("settings", ".json", '{"a": 1}', folder=tmp_path / "mine")
    assert mine.read_text() == '{"a": 1}' and mine.stat().st_mode & 0o777 == 0o600
