"""Configuration is read once, in ``boneage.config``: one name per setting, a deprecated alias that
still works (with a warning), one integer parser. (That domain code never reads the environment is pinned by ``tests/unit/test_architecture.py``.)"""

from __future__ import annotations

import warnings

import pytest

from boneage.config import EngineSettings, IngestSettings, Settings


def test_defaults_with_nothing_set():
    s = Settings.from_env({})
    assert s.ingest == IngestSettings(max_file_bytes=200 * 1024 * 1024, max_pixels=50_000_000)
    assert s.engine == EngineSettings(model_dir="", backend=None, threads=None)
    assert (s.lease_seconds, s.max_receive_count, s.input_prefix) == (120, 3, "incoming/")


def test_sections_are_read_from_their_variables():
    s = Settings.from_env({"BONEAGE_MAX_FILE_BYTES": "1000", "BONEAGE_MAX_PIXELS": "2000", "MODEL_DIR": "/opt/model",
                           "BONEAGE_BACKEND": " ipex ", "BONEAGE_THREADS": "3", "LEASE_SECONDS": "60"})
    assert s.ingest == IngestSettings(max_file_bytes=1000, max_pixels=2000)
    assert s.engine == EngineSettings(model_dir="/opt/model", backend="ipex", threads=3)
    assert s.lease_seconds == 60
    assert Settings.from_env(s.as_env()) == s


def test_the_old_object_size_name_still_works_with_a_deprecation_warning(caplog):
    with pytest.warns(DeprecationWarning, match="MAX_OBJECT_BYTES is deprecated; set BONEAGE_MAX_FILE_BYTES") as seen:
        s = Settings.from_env({"MAX_OBJECT_BYTES": "5000"})
    assert s.ingest.max_file_bytes == 5000
    assert seen[0].filename == __file__                 # attributed to the caller of from_env
    assert "MAX_OBJECT_BYTES is deprecated" in caplog.text   # and logged: Lambda hides DeprecationWarning


def test_the_new_name_wins_over_the_old_one_and_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = Settings.from_env({"MAX_OBJECT_BYTES": "5000", "BONEAGE_MAX_FILE_BYTES": "7000"})
    assert s.ingest.max_file_bytes == 7000


@pytest.mark.parametrize("name, value", [("LEASE_SECONDS", "soon"), ("BONEAGE_THREADS", "0"),
                                         ("BONEAGE_THREADS", "two"), ("BONEAGE_MAX_FILE_BYTES", "-1"),
                                         ("MAX_OBJECT_BYTES", "lots")])
def test_a_malformed_integer_stops_start_up_naming_the_variable(name, value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match=name):
            Settings.from_env({name: value})

