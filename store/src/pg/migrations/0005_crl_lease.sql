-- privca store schema, version 5: who may sign a CA's CRL (issue 12). A lease row per
-- issuer with its holder, expiry and a fencing token that grows with every new holder;
-- a CRL is stored only with the current token, so a signer whose lease ran out while it
-- signed cannot overwrite the CRL of the node that took over. A row, not an advisory
-- lock, so that it survives connection poolers and needs no session.
CREATE TABLE crl_leases (
    issuer     text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at bigint NOT NULL,
    token      bigint NOT NULL
);
