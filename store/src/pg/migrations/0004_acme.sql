-- privca store schema, version 4: ACME records (store::acme, RFC 8555 §7.1) as JSON rows,
-- with the columns the atomic operations key on: one account per key thumbprint, an
-- account's orders by creation.
CREATE TABLE acme_eab (
    kid    text PRIMARY KEY,
    record text NOT NULL
);
CREATE TABLE acme_accounts (
    id         text PRIMARY KEY,
    thumbprint text NOT NULL UNIQUE,
    record     text NOT NULL
);
CREATE TABLE acme_orders (
    id         text PRIMARY KEY,
    account    text NOT NULL,
    created_at bigint NOT NULL,
    record     text NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders (account, created_at, id);
CREATE TABLE acme_authzs (
    id     text PRIMARY KEY,
    record text NOT NULL
);
