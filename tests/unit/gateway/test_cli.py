"""``boneage gateway status|resend|check``: one JSON object with --json, read from the spool with the
gateway down, exit 2 naming the wrong field of a bad configuration; the log lines are JSON."""

from __future__ import annotations

import json
import logging

from boneage.cli import main
from boneage.gateway.runner import JsonFormatter
from boneage.gateway.spool import Delivery, Spool

from .conftest import config_dict, instance


def _config(tmp_path, **overrides):
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(config_dict("spool", **overrides)))
    return path


def test_status_and_resend_read_and_move_the_spool_with_the_gateway_down(tmp_path, capsys):
    path = _config(tmp_path)
    spool = Spool(tmp_path / "spool").create()
    spool.receive("1.2.3.4", instance("1.2.3.4"))
    dead = Delivery(upload_id="u1", ref="r1", report_keys={}, attempts=3, refusals=3, last_error="cstore_status_0xA900",
                    dead_reason="refused", failing_since=900.0)
    spool.add_delivery(dead)
    spool.add_delivery(Delivery(upload_id="u2", ref="r2", report_keys={}, attempts=5, last_error="pacs_unreachable",
                                failing_since=900.0))
    spool.finish_delivery(dead, dead=True)
    spool.ignore("r2", {"reason": "own_result", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.7"})
    assert main(["gateway", "status", "--config", str(path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["event"], status["running"], status["pending_uploads"], status["dead_letters"],
            status["spool_depth"]) == ("status", False, 1, 1, 3)
    assert (status["deliveries_retrying"], status["deliveries_refused"], status["dead_letters_refused"],
            status["dead_letters_max_age"]) == (1, 0, 1, 0)
    assert (status["ignored"], status["ignored_by_reason"]) == (1, {"own_result": 1})
    assert main(["gateway", "status", "--config", str(path)]) == 0
    text = capsys.readouterr().out
    assert "dead letters: 1 (refused 1, failing too long 0)" in text and f"boneage gateway resend --config {path}" in text
    assert "pending deliveries: 1 (retrying 1, refused by the PACS 0)" in text
    assert "ignored (acknowledged, not uploaded): 1; own_result: 1" in text
    assert main(["gateway", "resend", "--config", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"event": "resend", "moved": 1, "upload_ids": ["u1"]}
    assert spool.status()["pending_deliveries"] == 2 and spool.status()["dead_letters"] == 0
    resent = next(d for d in spool.pending_deliveries() if d.upload_id == "u1")
    assert (resent.attempts, resent.refusals, resent.failing_since, resent.dead_reason) == (0, 0, 0.0, None)


def test_a_bad_configuration_exits_2_naming_the_field(tmp_path, capsys):
    path = _config(tmp_path, allowed_calling_aets=[])
    assert main(["gateway", "check", "--config", str(path)]) == 2
    assert "allowed_calling_aets" in capsys.readouterr().err
    assert main(["gateway", "check", "--config", str(_config(tmp_path)), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["destination"] == "c-store"


def test_log_lines_are_json_with_their_extra_fields():
    record = logging.LogRecord("boneage.gateway.uploader", logging.WARNING, __file__, 1, "upload failed; retrying",
                               None, None)
    record.ref, record.attempt = "abc", 2
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["message"], line["ref"], line["attempt"]) == ("WARNING", "upload failed; retrying",
                                                                              "abc", 2)
    assert line["time"].endswith("Z")
