"""Secrets never reach stdout or stderr, at any log level, whatever happens during a run.

Every test that uses the `tap` and `fake` fixtures is also searched after it ends (conftest.py);
here the runs most likely to leak are made on purpose, at DEBUG level.
"""

from __future__ import annotations

import pytest
from helpers import leaked_secrets, secrets_of, seed


def test_leak_search_finds_a_planted_secret(fake):
    fake.tokens_issued.append("tok-0123456789abcdef")
    assert leaked_secrets(["INFO using tok-0123456789abcdef"], secrets_of(fake)) == ["tok-0123456789abcdef"]
    assert leaked_secrets(["INFO nothing here"], secrets_of(fake)) == []


@pytest.mark.slow
def test_no_secret_in_any_output_of_faulty_runs_at_debug_level(fake, tap):
    seed(fake, (200, 200, 100))
    fake.token_ttl = 2
    fake.latency = 0.05
    fake.chaos(0.15, seed=3)
    fake.on_request(4, lambda server: server.expire_tokens())
    password_config = {**fake.config(username=fake.username, password=fake.password)}
    del password_config["client_id"], password_config["client_secret"]
    runs = [
        tap.run(fake.config(), "--debug"),
        tap.run(password_config, "--debug"),
        tap.run(fake.config(), "--log-level", "debug", "--discover"),
        tap.run({**password_config, "password": fake.password + "-wrong"}, "--debug"),
        tap.run(fake.config(client_secret=fake.client_secret + "-wrong"), "--debug"),
    ]
    assert [run.returncode for run in runs] == [0, 0, 0, 1, 1]
    assert "DEBUG" in runs[0].stderr, "the runs really logged at DEBUG level"
    assert len(fake.tokens_issued) >= 4 and fake.refresh_tokens_issued
    secrets = secrets_of(fake) + [fake.password + "-wrong", fake.client_secret + "-wrong"]
    outputs = [text for run in runs for text in (run.stdout, run.stderr)]
    assert leaked_secrets(outputs, secrets) == []
