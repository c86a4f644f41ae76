"""Data the tap has not seen before: new fields and values of an unexpected type."""

from __future__ import annotations

from helpers import seed


def test_unknown_fields_are_dropped_with_one_warning_per_stream(fake, tap):
    seed(fake, (40, 60, 20))
    responses = [r["id"] for r in fake.records("responses")]
    for record_id in responses[:7]:
        fake.corrupt("responses", record_id, sentiment_label="positive")
    user = fake.records("end_users")[0]
    fake.corrupt("end_users", user["id"], settings={**user["settings"], "sms_nps": True})
    run = tap.run(fake.config())
    assert run.returncode == 0, run.stderr
    emitted = {r["id"]: r for r in run.records("responses")}
    assert set(emitted) == set(responses)
    assert all("sentiment_label" not in record for record in emitted.values())
    assert "sms_nps" not in {r["id"]: r for r in run.records("end_users")}[user["id"]]["settings"]
    about_new_field = [line for line in run.log() if "sentiment_label" in line]
    assert len(about_new_field) == 1 and about_new_field[0].startswith("WARNING responses: field 'sentiment_label'")
    assert len([line for line in run.log() if "'settings.sms_nps'" in line]) == 1


def test_values_of_the_wrong_type_become_null_with_a_warning_naming_stream_field_and_id(fake, tap):
    seed(fake, (40, 60, 20))
    response = fake.records("responses")[3]["id"]
    user = fake.records("end_users")[5]["id"]
    decline = fake.records("declines")[2]["id"]
    fake.corrupt("responses", response, score="SECRET-VALUE-ten")
    fake.corrupt("end_users", user, last_surveyed="SECRET-VALUE-not-a-date")
    fake.corrupt("declines", decline, survey_id={"SECRET-VALUE": 1})
    run = tap.run(fake.config())
    assert run.returncode == 0, run.stderr
    by_id = {stream: {r["id"]: r for r in run.records(stream)} for stream in ("responses", "end_users", "declines")}
    assert by_id["responses"][response]["score"] is None
    assert by_id["end_users"][user]["last_surveyed"] is None
    assert by_id["declines"][decline]["survey_id"] is None
    assert len(by_id["responses"]) == 60 and len(by_id["end_users"]) == 40 and len(by_id["declines"]) == 20
    lines = run.log()
    for stream, record_id, field in (("responses", response, "score"), ("end_users", user, "last_surveyed"),
                                     ("declines", decline, "survey_id")):
        assert any(line.startswith(f"WARNING {stream}: record id {record_id}: field '{field}'") for line in lines)
    # Values can be personal data: none is logged.
    assert "SECRET-VALUE" not in run.stderr


def test_warnings_about_one_field_are_capped_and_counted(fake, tap):
    seed(fake, (0, 30, 0))
    for record in fake.records("responses"):
        fake.corrupt("responses", record["id"], score="n/a")
    run = tap.run(fake.config())
    assert run.returncode == 0, run.stderr
    assert len(run.records("responses")) == 30
    about_score = [line for line in run.log() if "field 'score'" in line]
    assert len(about_score) == 5
    assert "30 values did not fit the schema and were emitted as null: score (30)" in run.stderr
