"""Fill a Tryton database with records for a benchmark, fast (through
trytond's own API in one transaction, not REST): `python seed.py CONFIG
DATABASE PARTIES PRODUCTS SALES`. Parties `Party N` with email
`partyN@example.com`; products `Product N`, code `TR-0000N`, salable by
the unit at 10 + N % 90; sales `SO-N` of party N % PARTIES, each with
three lines (products N, N+1, N+2 modulo PRODUCTS)."""

import sys
from decimal import Decimal

import trytond.config as tryton_config
from trytond.pool import Pool
from trytond.transaction import Transaction

config, database = sys.argv[1], sys.argv[2]
parties, products, sales = (int(a) for a in sys.argv[3:6])
tryton_config.update_etc(config)
Pool.start()
pool = Pool(database)
pool.init()
with Transaction().start(database, 0, context={}) as transaction:
    User = pool.get("res.user")
    (admin,) = User.search([("login", "=", "admin")])
    company = admin.company.id
with Transaction().start(database, admin.id, context={"company": company}) as transaction:
    (unit,) = pool.get("product.uom").search([("symbol", "=", "u")])
    # In slices: one create of thousands is one SQL statement too deep
    # for SQLite's parser.
    def create(model, values):
        made = []
        for start in range(0, len(values), 25):
            made.extend(pool.get(model).create(values[start:start + 25]))
        return made

    made_parties = create("party.party", [
        {"name": f"Party {i}",
         "contact_mechanisms": [("create", [{"type": "email", "value": f"party{i}@example.com"}])]}
        for i in range(parties)
    ])
    templates = create("product.template", [
        {"name": f"Product {i}", "type": "goods", "salable": True,
         "default_uom": unit.id, "sale_uom": unit.id,
         "list_price": Decimal(10 + i % 90),
         "products": [("create", [{"suffix_code": f"TR-{i:05}"}])]}
        for i in range(products)
    ])
    variants = [t.products[0] for t in templates]
    create("sale.sale", [
        {"party": made_parties[i % parties].id, "reference": f"SO-{i}",
         "lines": [("create", [
             {"type": "line", "product": variants[(i + k) % products].id,
              "quantity": 1 + k, "unit": unit.id, "description": f"Product {(i + k) % products}",
              "unit_price": Decimal(10 + (i + k) % products % 90)}
             for k in range(3)])]}
        for i in range(sales)
    ])
    transaction.commit()
