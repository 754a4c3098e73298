"""Create the template database every Tryton server that junction-tryton
starts is a copy of: `python setup.py CONFIG DATABASE KEY` with the
configuration's [database] path existing. Activates the modules the Tryton
connector syncs (party, product, stock, sale and what they depend on),
creates a company (in euros) for the admin user (password `admin`) —
prices and sales are per company, and a REST call names its company in
`X-Tryton-Context` — writes its id to `company.json` beside the database
(and `context`, what REST calls send as `X-Tryton-Context`), and gives the
admin user a validated REST application key, KEY, so that clients call
`/<database>/rest/…` with `Authorization: bearer KEY`. Loopback only: the
password and the key are known."""

import base64
import json

import os
import subprocess
import sys
import tempfile
from pathlib import Path

config, database, key = sys.argv[1], sys.argv[2], sys.argv[3]
bin_dir = Path(sys.executable).parent
with tempfile.NamedTemporaryFile("w", suffix=".pass", delete=False) as f:
    f.write("admin\n")
env = {**os.environ, "TRYTONPASSFILE": f.name}
admin = [str(bin_dir / "trytond-admin"), "-c", config, "-d", database]
subprocess.run([*admin, "--all", "--email", "admin@example.com"], check=True, env=env)
subprocess.run([*admin, "-u", "party", "product", "stock", "sale", "--activate-dependencies"], check=True, env=env)
os.unlink(f.name)

import trytond.config as tryton_config  # noqa: E402

tryton_config.update_etc(config)
from trytond.pool import Pool  # noqa: E402
from trytond.transaction import Transaction  # noqa: E402

Pool.start()
pool = Pool(database)
pool.init()
with Transaction().start(database, 0, context={}) as transaction:
    User = pool.get("res.user")
    (admin_user,) = User.search([("login", "=", "admin")])
    (euro,) = pool.get("currency.currency").create([{"name": "Euro", "code": "EUR", "symbol": "€"}])
    (owner,) = pool.get("party.party").create([{"name": "Junction Test Company"}])
    (company,) = pool.get("company.company").create([{"party": owner.id, "currency": euro.id}])
    User.write([admin_user], {"companies": [("add", [company.id])], "company": company.id})
    pool.get("res.user.application").create(
        [{"key": key, "user": admin_user.id, "application": "rest", "state": "validated"}]
    )
    transaction.commit()
context = json.dumps({"company": company.id})
(Path(config).parent / "company.json").write_text(context)
# What REST calls send as X-Tryton-Context: the context, base64url.
(Path(config).parent / "context").write_text(base64.urlsafe_b64encode(context.encode()).decode())
