-- privca store schema, version 1: every record type of the Store trait.
-- Times are seconds since the Unix epoch (bigint), serials the DER INTEGER contents.

-- Every serial ever reserved (RFC 5280 §4.1.2.2; docs/architecture.md, decision 3): the
-- primary key is what makes a serial unique across all nodes. Never deleted.
CREATE TABLE serials (
    serial      bytea PRIMARY KEY CHECK (octet_length(serial) BETWEEN 1 AND 20),
    issuer      text NOT NULL,
    reserved_at bigint NOT NULL,
    node        text NOT NULL DEFAULT ''
);

CREATE TABLE certificates (
    serial          bytea PRIMARY KEY REFERENCES serials (serial),
    issuer          text NOT NULL,
    subject         text NOT NULL,
    sans            text[] NOT NULL,
    profile         text NOT NULL,
    requester       text NOT NULL,
    not_before      bigint NOT NULL,
    not_after       bigint NOT NULL,
    issued_at       bigint NOT NULL,
    -- RFC 5280 §5.3.1 reason and §5.3.2 invalidity date; all NULL while valid.
    revoked_at      bigint,
    reason          smallint CHECK (reason BETWEEN 0 AND 10),
    invalidity_date bigint,
    -- SHA-256 of the SubjectPublicKeyInfo; empty until index_missing_keys fills it.
    spki_sha256     bytea NOT NULL DEFAULT ''::bytea,
    der             bytea NOT NULL,
    CHECK ((revoked_at IS NULL) = (reason IS NULL))
);
-- Listing by expiry (not_after, then serial), as the redb expiry index orders it.
CREATE INDEX certificates_expiry ON certificates (not_after, serial);
-- An issuer's revocation list in numeric serial order (minimal positive serials: shorter
-- first, then bytewise).
CREATE INDEX certificates_revoked ON certificates (issuer, octet_length(serial), serial)
    WHERE revoked_at IS NOT NULL;
-- Every certificate of a key (revocation by key).
CREATE INDEX certificates_spki ON certificates (spki_sha256, serial);

-- Keys revoked for keyCompromise: never certified again.
CREATE TABLE blocked_keys (
    spki_sha256 bytea PRIMARY KEY CHECK (octet_length(spki_sha256) = 32),
    serial      bytea NOT NULL,
    issuer      text NOT NULL,
    blocked_at  bigint NOT NULL
);

-- The last cRLNumber allocated per issuer (RFC 5280 §5.2.3), advanced with one
-- UPDATE ... RETURNING so numbers strictly increase across nodes.
CREATE TABLE crl_numbers (
    issuer text PRIMARY KEY,
    number bigint NOT NULL CHECK (number > 0)
);

CREATE TABLE crls (
    issuer      text PRIMARY KEY,
    number      bigint NOT NULL,
    this_update bigint NOT NULL,
    next_update bigint NOT NULL,
    der         bytea NOT NULL
);

-- One hash chain for all nodes: appends lock the single audit_head row, last, in the
-- transaction of the record they describe.
CREATE TABLE audit (
    seq       bigint PRIMARY KEY CHECK (seq > 0),
    at        bigint NOT NULL,
    action    text NOT NULL,
    actor     text NOT NULL,
    subject   text NOT NULL,
    detail    text NOT NULL,
    prev_hash text NOT NULL,
    hash      text NOT NULL,
    node      text NOT NULL DEFAULT ''
);
CREATE TABLE audit_head (
    id   smallint PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE SEQUENCE pending_ids;
CREATE TABLE pending (
    id         bigint PRIMARY KEY,
    lookup_key text NOT NULL,
    endpoint   text NOT NULL,
    profile    text NOT NULL,
    requester  text NOT NULL,
    csr_der    bytea NOT NULL,
    created_at bigint NOT NULL,
    state      text NOT NULL CHECK (state IN ('pending', 'issued', 'rejected')),
    serial     bytea,
    note       text
);
-- At most one request per lookup key waits for a decision, whichever node took it.
CREATE UNIQUE INDEX pending_one_open ON pending (lookup_key) WHERE state = 'pending';
CREATE INDEX pending_lookup ON pending (lookup_key, id);

-- One-time challenges (only their SHA-256).
CREATE TABLE challenges (
    hash       bytea PRIMARY KEY,
    endpoint   text NOT NULL,
    created_by text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    used_at    bigint,
    used_for   bytea
);

-- Protocol transaction keys (SCEP transaction ID + signer key hash, ...) -> serial.
CREATE TABLE transactions (
    key    text PRIMARY KEY,
    serial bytea NOT NULL
);

-- Flags of the database: key_index_complete = 1 once every record is in the key index.
CREATE TABLE meta (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO meta (name, value) VALUES ('key_index_complete', 1);
