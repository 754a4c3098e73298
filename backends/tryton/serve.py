"""Serve a Tryton database over HTTP one request at a time:
`TRYTOND_CONFIG=trytond.conf python serve.py HOST PORT`.

`trytond` always runs a threaded server, and Tryton's SQLite backend
shares one connection between its threads: two requests in flight at once
interleave their transactions on it, so a party code sequence is read
twice ("The code on party must be unique") and a request Tryton refused
can be committed by the other's commit. Tryton on SQLite is for one user;
served here without threads, requests queue on the socket instead."""

import sys

from trytond.application import app
from werkzeug.serving import run_simple

run_simple(sys.argv[1], int(sys.argv[2]), app, threaded=False)
