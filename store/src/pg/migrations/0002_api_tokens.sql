-- privca store schema, version 2: API tokens of the admin API and the console
-- (store::tokens::ApiToken as JSON; the secret only as its SHA-256).
CREATE TABLE api_tokens (
    id     text PRIMARY KEY,
    record text NOT NULL
);
