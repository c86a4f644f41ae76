"""A fake Wootric API (v1, v2 and CXI) on 127.0.0.1 for tests and demos.

It follows the shared API notes, wootric-api-notes.md (sections 1.1, 2.2, 2.3, 3, 4, 5, 6, 7 and 9):

- ``POST /oauth/token`` with the client_credentials, password and refresh_token grants;
  access tokens expire after ``token_ttl`` seconds.
- ``GET /v1/end_users``, ``/v1/responses``, ``/v1/declines``: bare JSON arrays, ``page`` 1..30,
  ``per_page`` 1..50 (400 ``error_list`` outside), per-endpoint default sorts, ``created[op]`` filters
  everywhere and ``updated[op]`` on end_users only (unless configured), all compared against the stored
  microsecond times while the output shows whole seconds in the account's DST-aware offset.
- ``GET /v1/nps_summary``, ``/v1/survey_templates``, ``/v2/email_stats`` and ``/v2/email_stats/sources``
  (notes §2.1, §3.5). The summaries are computed from the fake's own responses and declines over whole days
  of the account's zone: NPS leaves out excluded responses; the e-mail funnel is drawn per day from a seed,
  around the day's responses (the fake's account surveys by e-mail only, so ``total_responses`` is the
  number of responses created in the period).
- The CXI API under ``/cxi/v1`` (``cxi_url``; notes §6): responses, imports, projects, tags.

Modules: ``world`` (the data and the clock), ``routes_v1`` / ``routes_v2`` / ``routes_cxi`` (what each API
answers), ``faults`` (what it answers instead), ``server`` (FakeWootric, tokens, HTTP), ``cli``.

Options (constructor arguments; the ones marked *attribute* can also be set on a running fake):

- ``seed``: every generated value comes from it. ``client_id``, ``client_secret``, ``username``,
  ``password``: the accepted credentials. ``token_ttl``: access token lifetime in seconds.
- ``honour_updated_filter``: streams besides end_users whose ``updated[op]`` filters (Grape drops it else).
- ``shuffle_ties`` (*attribute*): tied rows in a fresh random order on every request, as a database may
  for ORDER BY on a non-unique key (seeded by the request number, so a failure replays).
- ``whole_seconds``: created_at and updated_at stored cut to the whole second, so filters compare whole
  seconds and every row of a second ties.
- ``account_tz``: the account's zone, for rendered offsets and the summaries' days.
- ``clock_offset`` (*attribute*, seconds, default 0): the API's clock is this machine's plus the offset.
  create() and update() without ``at=`` stamp rows on it; the ``Date`` header of every answer (token
  endpoint and errors included), ``X-Rate-Limit-Reset``, a token's ``created_at``, the summaries' "today"
  and date-form ``Retry-After`` all follow it. Filters compare stored stamps, as always.
- ``late_visibility`` (*attribute*, seconds, default 0): a row created or edited by create() / update() at
  real time t is left out of list reads until t + v; until then those reads return the row's previous
  version (an edit) or nothing (a new row). Its stamps stay t. Single-row reads see it at once.
- ``send_date`` (*attribute*, default True): False sends no ``Date`` header at all.
- ``rate_limit`` / ``window_seconds`` (*attributes*): a budget of GETs per path per window of the API's
  clock, with ``X-Rate-Limit-Limit``, ``-Remaining`` and ``-Reset`` (epoch seconds) headers; 429 beyond it.
  Windows are fixed, aligned to multiples of ``window_seconds``, and a 429 spends nothing.
- ``rate_limit_shared`` (*attribute*, default False): True counts one budget of ``rate_limit`` per window
  across every ``/v1/`` path together (``/oauth/token`` is never limited), and every answer of a v1 path
  reports that shared ``Remaining``: Wootric's "per minute per account" read as one account budget. The v2
  and CXI paths keep a budget per path either way (they are other APIs, the CXI one on another host).
- ``latency`` (*attribute*): seconds every API GET waits before it is answered.
- ``ignore_updated_sort`` (*attribute*): streams whose ``sort_key=updated_at`` is silently ignored.
- ``indexed`` (*attribute*): serve time ranges from sorted indexes (False: the reference path).
- ``cxi_omit_total`` (*attribute*): leave ``total_count`` out of CXI responses.

Hooks, by the 1-based number of an API GET (token requests are not counted):

- ``on_request(n, action)``: call ``action(fake)`` just before serving request n (change data mid-sync).
- ``fail(n, status, body=None, headers=None)``: answer request n with a status instead.
- ``fault(n, kind, seconds=2)``: break it at the transport level (``reset``, ``slow``, ``truncated``,
  ``garbage``). ``chaos(rate, kinds, seed=0)``: break requests at random from now on.
- ``rate_limit_with_date(n, seconds=2)``: request n answers 429 with ``Retry-After`` an IMF-fixdate (the
  API's now plus ``seconds``, rounded up) and no ``X-Rate-Limit-*`` headers; so does every request before
  that moment.
- ``refuse(route, status)``: after a valid token check, answer ``status`` with the API's usual error body
  on a route (``"survey_templates"``, ``"segments"``, ``"v2/email_stats"``, ``"cxi/tags"``) or a whole API
  (``"v1"``, ``"v2"``, ``"cxi"``); ``refuse(route, None)`` serves it again. A refused 401 stays 401 after a
  token renewal. ``cxi_status`` and ``v2_status`` are the whole-API refusals as attributes (CXI 424 carries
  the onboarding message).
- ``expire_tokens()``; ``grants`` lists the grant_type of every token issued. Data changes: ``generate``,
  ``add_burst``, ``create``, ``update``, ``corrupt``, ``delete``; the log in ``requests`` /
  ``list_requests()``; bugs of the fake in ``errors``.

In tests it runs in a daemon thread (``with FakeWootric(seed=3) as fake: ...``, or the ``make_fake`` and
``fake`` fixtures); for a demo run it alone::

    python tests/fake_wootric.py --port 8765 --seed 7 --end-users 300 --responses 1200 --declines 200 --years 3
"""

from .common import STREAMS, error_list, http_date, oauth_error, to_utc, utc_now
from .faults import TRANSPORT_FAULTS
from .server import FakeWootric

__all__ = ["STREAMS", "TRANSPORT_FAULTS", "FakeWootric", "error_list", "http_date", "oauth_error", "to_utc",
           "utc_now"]
