"""Run the original singer-io tap-wootric 0.5.3 against the fake API.

0.5.3 hard-codes https://api.wootric.com for its API and OAuth calls; this wrapper, run by the
Python of the virtualenv that holds 0.5.3, points both at WOOTRIC_FAKE_URL and then calls the
tap's own main() with the command-line arguments it was given. Nothing else is changed.
"""

import os
import sys

import requests

import tap_wootric

FAKE_URL = os.environ["WOOTRIC_FAKE_URL"].rstrip("/")
REAL_HOST = "https://api.wootric.com"
_real_post = requests.post


def _post_to_fake(url, *args, **kwargs):
    return _real_post(url.replace(REAL_HOST, FAKE_URL), *args, **kwargs)


tap_wootric.BASE_URL = FAKE_URL + "/v1/"
requests.post = _post_to_fake
sys.argv = ["tap-wootric", *sys.argv[1:]]
tap_wootric.main()
