"""Signs ACME requests with josepy, the JOSE library certbot signs its requests with.

Prints one JSON object per line: {"alg", "url", "nonce", "body", "thumbprint", "eab_key"?}.
`body` is the flattened JWS as josepy serializes it. The header fields nonce, url and kid
are declared the way certbot's `acme` package declares them (RFC 8555 section 6.2); the
External Account Binding is made as that package makes it (RFC 8555 section 7.3.4).
Keys are generated here, for this run only.
"""
import json
import sys

import josepy as jose
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class Header(jose.Header):
    nonce: bytes = jose.field("nonce", omitempty=True, encoder=jose.encode_b64jose)
    kid: str = jose.field("kid", omitempty=True)
    url: str = jose.field("url", omitempty=True)

    @nonce.decoder
    def nonce(value):
        return jose.decode_b64jose(value)


class Signature(jose.Signature):
    __slots__ = jose.Signature._orig_slots
    header_cls = Header
    header: Header = jose.field("header", omitempty=True, default=header_cls(), decoder=header_cls.from_json)


class JWS(jose.JWS):
    signature_cls = Signature
    __slots__ = jose.JWS._orig_slots


URL = sys.argv[1]
# As certbot's acme package signs: every header field protected, the jwk only when there
# is no kid.
PROTECT = frozenset(["alg", "jwk", "nonce", "url", "kid"])
KEYS = [
    ("RS256", jose.RS256, jose.JWKRSA(key=rsa.generate_private_key(65537, 2048))),
    ("RS256-4096", jose.RS256, jose.JWKRSA(key=rsa.generate_private_key(65537, 4096))),
    ("ES256", jose.ES256, jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))),
    ("ES384", jose.ES384, jose.JWKEC(key=ec.generate_private_key(ec.SECP384R1()))),
    ("ES512", jose.ES512, jose.JWKEC(key=ec.generate_private_key(ec.SECP521R1()))),
]
for name, alg, key in KEYS:
    public = key.public_key()
    nonce = b"nonce-" + name.encode()
    payload = {"termsOfServiceAgreed": True, "contact": ["mailto:admin@example.com"]}
    eab_key = b"\x5a" * 32
    # The binding: HS256 over the account's public JWK, kid and url protected, no nonce.
    eab = JWS.sign(
        json.dumps(public.to_partial_json()).encode(),
        key=jose.jwk.JWKOct(key=eab_key),
        alg=jose.HS256,
        protect=PROTECT,
        include_jwk=False,
        kid="kid-" + name,
        url=URL,
    )
    payload["externalAccountBinding"] = json.loads(eab.json_dumps())
    body = JWS.sign(
        json.dumps(payload).encode(),
        key=key,
        alg=alg,
        include_jwk=True,
        protect=PROTECT,
        nonce=nonce,
        url=URL,
    ).json_dumps()
    print(json.dumps({
        "alg": name,
        "url": URL,
        "nonce": jose.encode_b64jose(nonce),
        "body": body,
        "thumbprint": jose.encode_b64jose(public.thumbprint()),
        "eab_key": jose.encode_b64jose(eab_key),
        "eab_kid": "kid-" + name,
    }))
