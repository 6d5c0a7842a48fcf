#!/usr/bin/env bash
# Regenerates the seed corpora under fuzz/corpus/<target>/ from real client messages:
#   - the captured SCEP client messages in tests/vectors/scep/ (scepclient, certmonger),
#     their EnvelopedData (taken out with `openssl cms`) and their decrypted CSRs;
#   - CSRs made with `openssl req` (RSA, EC P-256/P-384, SHA-1/SHA-384/PSS signatures,
#     SANs of every type, challengePassword, extensionRequest, multi-valued RDNs, PEM);
#   - OCSP requests made with `openssl ocsp -reqout` (SHA-1 and SHA-256 CertIDs, with and
#     without nonce, several CertIDs, a signed request) and their GET path encodings;
#   - envelopes made with `openssl cms -encrypt` (PKCS#1 v1.5 and OAEP SHA-1/SHA-256,
#     AES-128/256, 3DES, DES, issuerAndSerialNumber and subjectKeyIdentifier recipients);
#   - EST bodies exactly as curl sends them (captured by a one-shot loopback listener):
#     base64 with LF and CRLF line breaks, on one line, PEM, raw DER, multipart/form-data,
#     and curl's `Authorization: Basic` header value;
#   - JSON answers of the challenge methods (webhook, Entra ID token, Graph discovery,
#     Intune ScepActions) as the unit tests use them;
#   - DNS answers to the dns-01 TXT question, built in RFC 1035 wire format (TXT
#     records, a split TXT string, a CNAME, NXDOMAIN, truncated, REFUSED);
#   - ACME newAccount requests signed by josepy, the JOSE library certbot uses
#     (tests/clients/josepy_requests.py: RS256, ES256, ES384, ES512, each with an External
#     Account Binding), and a POST-as-GET by kid.
#
# Needs openssl, curl and python3 with josepy (all installed by scripts/test.sh; run it
# with the project's .venv on PATH). Keys are made fresh
# in a temporary directory and thrown away; only the messages are kept. The files change
# on every run (fresh keys, nonces, signatures); their shapes do not.
#
# Usage: fuzz/seeds.sh            (from anywhere; rewrites fuzz/corpus/)
set -euo pipefail
cd "$(dirname "$0")"
FUZZ="$PWD"
VEC="$FUZZ/../tests/vectors/scep"
OUT="$FUZZ/corpus"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT

targets=(csr csr_content csr_signed ocsp_request ocsp_get scep_pkimessage scep_envelope
  scep_envelope_built scep_signed est_request est_body challenge_answers acme_jws
  acme_order acme_dns)
for t in "${targets[@]}"; do
  rm -rf "${OUT:?}/$t"
  mkdir -p "$OUT/$t"
done

# --- CSRs -------------------------------------------------------------------------------
openssl genrsa -out "$T/rsa.key" 2048 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/p256.key"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$T/p384.key"

cat >"$T/req.cnf" <<'EOF'
[req]
distinguished_name = dn
attributes = attrs
prompt = no
[dn]
C = DE
ST = Berlin
O = Example GmbH
OU = Devices
CN = dev42.example.com
emailAddress = ops@example.com
[attrs]
challengePassword = s3cret-Challenge
EOF

csr() { # name key [openssl req args...]
  local name=$1 key=$2
  shift 2
  openssl req -new -key "$T/$key" -outform DER -out "$T/$name.csr" "$@"
}
csr rsa-cn rsa.key -subj /CN=dev1
csr rsa-sha1-challenge rsa.key -sha1 -config "$T/req.cnf"
csr rsa-pss rsa.key -subj "/CN=pss.example.com" -sigopt rsa_padding_mode:pss \
  -sigopt rsa_pss_saltlen:32 -addext "subjectAltName=DNS:pss.example.com"
csr p256-sans p256.key -subj "/O=Example/CN=www.example.com" \
  -addext "subjectAltName=DNS:www.example.com,DNS:*.example.com,IP:192.0.2.7,IP:2001:db8::1,email:a@example.com,URI:https://id.example.com/device/7"
csr p256-extreq p256.key -subj "/CN=srv.example.com" \
  -addext "subjectAltName=DNS:srv.example.com" \
  -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
  -addext "extendedKeyUsage=serverAuth,clientAuth" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -addext "1.3.6.1.4.1.311.20.2=ASN1:UTF8String:Machine"
csr p256-challenge-ext p256.key -config "$T/req.cnf" \
  -addext "subjectAltName=DNS:dev42.example.com,otherName:1.3.6.1.4.1.311.20.2.3;UTF8:dev42@example.com"
csr p384-sha384 p384.key -sha384 -subj "/C=US/ST=CA/L=San Jose/O=Ex Inc/OU=Net/CN=router-1"
csr p256-multirdn p256.key -multivalue-rdn -subj "/O=Example/CN=a+serialNumber=1234/UID=u7"
csr p256-utf8 p256.key -utf8 -subj "/CN=gerät-ü.example/O=Müller"
csr p256-empty-subject p256.key -subj / -addext "subjectAltName=DNS:nosubject.example.com"
cat >"$T/intune.cnf" <<'CNF'
[req]
distinguished_name = dn
req_extensions = ext
prompt = no
[dn]
CN = intune-device
[ext]
subjectAltName = @alt
[alt]
URI.1 = tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-1001
DNS.1 = laptop.example.com
CNF
csr p256-intune-uri p256.key -config "$T/intune.cnf"
# otherName SANs (issue 15 item 3): an Intune user certificate's UPN, a device's
# permanentIdentifier (RFC 4043) and hardwareModuleName (RFC 4108 §5), an unknown
# otherName type and a UPN of the wrong inner type.
cat >"$T/othername.cnf" <<'CNF'
[req]
distinguished_name = dn
req_extensions = ext
prompt = no
[dn]
CN = jane@corp.example
[ext]
subjectAltName = otherName:1.3.6.1.4.1.311.20.2.3;UTF8:jane@corp.example,otherName:1.3.6.1.5.5.7.8.3;SEQUENCE:pi,otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hw,email:jane@corp.example
[pi]
value = UTF8:SN-0042
assigner = OID:1.3.6.1.4.1.99999.1
[hw]
type = OID:1.3.6.1.4.1.99999.2
serial = FORMAT:HEX,OCTETSTRING:DEADBEEF
CNF
csr p256-othernames p256.key -config "$T/othername.cnf"
csr p256-othername-unknown p256.key -subj "/CN=x" \
  -addext "subjectAltName=otherName:1.2.3.4.5;UTF8:x"
csr p256-upn-ia5 p256.key -subj "/CN=x" \
  -addext "subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;IA5STRING:jane@corp.example"
openssl req -new -key "$T/p256.key" -subj "/CN=pem.example.com" -out "$T/pem-p256.csr.pem"

# The CSRs inside the captured SCEP requests (decrypted with the test-only RA key).
openssl pkey -inform DER -in "$VEC/ra-TEST-ONLY-key.pk8.der" -out "$T/ra.key"
openssl x509 -inform DER -in "$VEC/ra.crt.der" -out "$T/ra.crt"
for v in scepclient-2.1.0-pkcsreq-des-sha1 scepclient-2.1.0-renewalreq-des-sha1 \
  certmonger-0.79.17-pkcsreq-aes256-sha256 certmonger-0.79.17-pkcsreq-des3-sha256; do
  # The SignedData's content is the EnvelopedData (signature checked, chain not).
  openssl cms -verify -noverify -binary -inform DER -in "$VEC/$v.der" -out "$T/$v.env" 2>/dev/null
  openssl cms -decrypt -provider legacy -provider default -binary -inform DER -in "$T/$v.env" -inkey "$T/ra.key" \
    -recip "$T/ra.crt" -out "$T/scep-$v.csr"
done

for f in "$T"/*.csr; do
  b=$(basename "$f" .csr)
  for t in csr csr_content csr_signed; do cp "$f" "$OUT/$t/$b.der"; done
done
for t in csr csr_content csr_signed; do cp "$T/pem-p256.csr.pem" "$OUT/$t/p256.pem"; done

# --- OCSP -------------------------------------------------------------------------------
openssl req -x509 -new -key "$T/p256.key" -subj "/O=Seed/CN=Seed CA" -days 30 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$T/ca.pem"
openssl req -new -key "$T/rsa.key" -subj "/CN=leaf.example.com" -out "$T/leaf.csr"
openssl x509 -req -in "$T/leaf.csr" -CA "$T/ca.pem" -CAkey "$T/p256.key" -days 10 \
  -set_serial 0x00c3a1f0e2d4b6a8990011223344556677 -out "$T/leaf.pem" 2>/dev/null
ocsp() { # name [openssl ocsp args...]
  local name=$1
  shift
  openssl ocsp -issuer "$T/ca.pem" -reqout "$T/$name.ocsp" "$@" >/dev/null
}
ocsp sha1-nonce -cert "$T/leaf.pem"
ocsp sha1-nononce -cert "$T/leaf.pem" -no_nonce
ocsp sha256-nononce -sha256 -cert "$T/leaf.pem" -no_nonce
ocsp sha256-nonce -sha256 -cert "$T/leaf.pem"
ocsp three-serials -serial 0x01 -serial 0x7fffffffffffffffffffffffffffffff -serial 12345
ocsp signed -cert "$T/leaf.pem" -signer "$T/leaf.pem" -signkey "$T/rsa.key"
for f in "$T"/*.ocsp; do
  b=$(basename "$f" .ocsp)
  cp "$f" "$OUT/ocsp_request/$b.der"
  # GET /ocsp/<url-encoded base64> (RFC 6960 A.1): percent-encoded as NSS and CryptoAPI
  # send it, raw (+ / = left as they are, as many clients do), URL-safe without padding.
  python3 - "$f" "$OUT/ocsp_get/$b" <<'EOF'
import base64, sys, urllib.parse
der = open(sys.argv[1], "rb").read()
b64 = base64.b64encode(der).decode()
out = sys.argv[2]
open(out + ".pct", "w").write(urllib.parse.quote(b64, safe=""))
open(out + ".raw", "w").write(b64)
open(out + ".urlsafe", "w").write(base64.urlsafe_b64encode(der).decode().rstrip("="))
EOF
done

# --- SCEP -------------------------------------------------------------------------------
for v in "$VEC"/*pkcsreq*.der "$VEC"/*renewalreq*.der "$VEC"/privca-certrep-*.der; do
  cp "$v" "$OUT/scep_pkimessage/"
done
cp "$VEC/certmonger-0.79.17-pkcsreq-get-query.txt" "$OUT/scep_pkimessage/"
printf 'operation=GetCACaps&message=CA' >"$OUT/scep_pkimessage/getcacaps-query.txt"
for f in "$T"/*.env; do cp "$f" "$OUT/scep_envelope/$(basename "$f" .env).der"; done
# Envelopes in every shape RFC 8894 §3.2.1 and RFC 5652 §6 allow, around a real CSR.
CSR1="$T/scep-scepclient-2.1.0-pkcsreq-des-sha1.csr"
enc() { # name [openssl cms -encrypt args...]
  local name=$1
  shift
  openssl cms -encrypt -binary -outform DER -in "$CSR1" -recip "$T/ra.crt" \
    -out "$OUT/scep_envelope/openssl-$name.der" "$@"
}
enc aes128-pkcs1 -aes-128-cbc
enc aes256-oaep-sha1 -aes-256-cbc -keyopt rsa_padding_mode:oaep
enc aes256-oaep-sha256 -aes-256-cbc -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256
enc aes128-oaep-sha512-mgf1-sha1 -aes-128-cbc -keyopt rsa_padding_mode:oaep \
  -keyopt rsa_oaep_md:sha512 -keyopt rsa_mgf1_md:sha1
enc des3-pkcs1 -des3
enc aes128-keyid -aes-128-cbc -keyid
openssl cms -encrypt -provider legacy -provider default -binary -outform DER -in "$CSR1" -recip "$T/ra.crt" -des \
  -out "$OUT/scep_envelope/openssl-des-pkcs1.der" 2>/dev/null || true
# Inputs of the structure-aware targets: one selector byte, then the plaintext
# (scep_envelope_built: cipher and key transport; the envelope is made by the target) or
# the envelope (scep_signed: messageType; the target signs the pkiMessage).
i=0
for f in "$T"/scep-*.csr; do
  printf "\\x$(printf %02x $i)" | cat - "$f" >"$OUT/scep_envelope_built/$(basename "$f" .csr)"
  i=$((i + 1))
done
# GetCertInitial's IssuerAndSubject and GetCert/GetCRL's IssuerAndSerialNumber.
python3 - "$T/ca.pem" "$OUT/scep_envelope_built" <<'EOF'
import base64, sys
pem = open(sys.argv[1]).read()
der = base64.b64decode("".join(l for l in pem.splitlines() if not l.startswith("-----")))
def tlv(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + body
def children(b):
    out, i = [], 0
    while i < len(b):
        tag, l = b[i], b[i + 1]
        j = i + 2
        if l & 0x80:
            k = l & 0x7F
            l = int.from_bytes(b[j:j + k], "big")
            j += k
        out.append(b[i:j + l]); i = j + l
    return out
def body(t):
    l = t[1]
    return t[2 + (l & 0x7F if l & 0x80 else 0):]
tbs = children(body(der))[0]
f = children(body(tbs))
serial, issuer, subject = f[1], f[3], f[5]
open(sys.argv[2] + "/issuer-and-subject", "wb").write(b"\x02" + tlv(0x30, issuer + subject))
open(sys.argv[2] + "/issuer-and-serial", "wb").write(b"\x03" + tlv(0x30, issuer + serial))
EOF
i=0
for f in "$OUT"/scep_envelope/*.der; do
  printf "\\x$(printf %02x $i)" | cat - "$f" >"$OUT/scep_signed/$(basename "$f" .der)"
  i=$((i + 1))
done

# --- EST: bodies and headers as curl sends them -------------------------------------------
EST_CSR="$T/p256-extreq.csr"
openssl base64 -in "$EST_CSR" -out "$T/est-lf.b64"              # 64 columns, LF
sed 's/$/\r/' "$T/est-lf.b64" >"$T/est-crlf.b64"                 # CRLF line breaks
openssl base64 -A -in "$EST_CSR" -out "$T/est-oneline.b64"       # one line, no newline
openssl req -inform DER -in "$EST_CSR" -out "$T/est.pem"         # PEM armour
cp "$EST_CSR" "$T/est.der"                                       # raw DER
python3 - "$T/cap" <<'EOF' &
# One-shot loopback listener: records each request's raw bytes, answers 200.
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8); s.settimeout(30)
open(sys.argv[1] + ".port", "w").write(str(s.getsockname()[1]))
for n in range(7):
    c, _ = s.accept(); c.settimeout(10); data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        rest += c.recv(65536)
    open(f"{sys.argv[1]}.{n}", "wb").write(data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + rest)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); c.close()
EOF
LISTENER=$!
for _ in $(seq 50); do [ -s "$T/cap.port" ] && break; sleep 0.1; done
URL="http://127.0.0.1:$(cat "$T/cap.port")/.well-known/est/simpleenroll"
CT='Content-Type: application/pkcs10'
curl -s -o /dev/null -u 'device-7:pa55 w0rd' -H "$CT" --data-binary @"$T/est-lf.b64" "$URL"
curl -s -o /dev/null -H "$CT" --data-binary @"$T/est-crlf.b64" "$URL"
curl -s -o /dev/null -H "$CT" --data-binary @"$T/est-oneline.b64" "$URL"
curl -s -o /dev/null -H "$CT" --data-binary @"$T/est.pem" "$URL"
curl -s -o /dev/null -H "$CT" --data-binary @"$T/est.der" "$URL"
curl -s -o /dev/null -F "csr=@$T/est-lf.b64;type=application/pkcs10" "$URL"
curl -s -o /dev/null -H "$CT" -d @"$T/est-lf.b64" "$URL" # -d drops the line breaks
wait "$LISTENER"
names=(base64-lf base64-crlf base64-oneline pem der multipart-form curl-d)
for n in 0 1 2 3 4 5 6; do
  python3 - "$T/cap.$n" "$T/body-${names[$n]}" "$T/auth-$n" <<'EOF'
import sys
raw = open(sys.argv[1], "rb").read()
head, body = raw.split(b"\r\n\r\n", 1)
open(sys.argv[2], "wb").write(body)
for line in head.split(b"\r\n"):
    if line.lower().startswith(b"authorization:"):
        open(sys.argv[3], "wb").write(line.split(b":", 1)[1].strip())
EOF
done
for n in "${names[@]}"; do
  cp "$T/body-$n" "$OUT/est_body/$n"
  cp "$T/body-$n" "$OUT/est_request/$n"
done
cp "$T/auth-0" "$OUT/est_request/authorization-basic"

# --- Challenge method answers (shapes from scep/src/{webhook,intune}.rs tests) ----------
A="$OUT/challenge_answers"
printf '%s' '{"allow": true}' >"$A/webhook-allow"
printf '%s' '{"allow": false, "reason": "device not enrolled"}' >"$A/webhook-deny"
printf '%s' '{"allow": true, "profile": "device", "requester": "mdm:device-7"}' >"$A/webhook-allow-profile"
printf '%s' '{"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.sig","token_type":"Bearer","expires_in":3599}' >"$A/entra-token"
printf '%s' '{"access_token":"t","expires_in":"3599","ext_expires_in":3599}' >"$A/entra-token-text"
printf '%s' '{"value":[{"providerName":"ScepRequestValidationFEService","uri":"https://fef.msub01.manage.microsoft.com/StatelessScepRequestValidation/StatelessScepRequestValidationService"},{"providerName":"PkiConnectorFEService","uri":"https://a/x"}]}' >"$A/graph-discovery"
printf '%s' '{"code":"Success","errorDescription":"","transactionId":"t-1","activityId":"a-1"}' >"$A/intune-success"
printf '%s' '{"code":"ChallengeDecryptionError","errorDescription":"the challenge cannot be decrypted","transactionId":"t-2"}' >"$A/intune-refused"

# --- ACME requests (josepy, as certbot signs them) --------------------------------------
python3 "$FUZZ/../tests/clients/josepy_requests.py" https://127.0.0.1:8443/acme/servers/new-account |
  python3 -c '
import json, sys
out = sys.argv[1]
for line in sys.stdin:
    l = json.loads(line)
    open(out + "/new-account-" + l["alg"], "w").write(l["body"])
' "$OUT/acme_jws"
printf '%s' '{"protected":"eyJhbGciOiJFUzI1NiIsImtpZCI6Imh0dHBzOi8vMTI3LjAuMC4xOjg0NDMvYWNtZS9zZXJ2ZXJzL2FjY3QvMSIsIm5vbmNlIjoibiIsInVybCI6Imh0dHBzOi8vMTI3LjAuMC4xOjg0NDMvYWNtZS9zZXJ2ZXJzL29yZGVyLzEifQ","payload":"","signature":"AAAA"}' >"$OUT/acme_jws/post-as-get-kid"

# --- ACME newOrder and finalize payloads (as certbot and lego send them) ---------------
O="$OUT/acme_order"
printf '%s' '{"identifiers":[{"type":"dns","value":"www.acme.test"},{"type":"dns","value":"API.acme.test"}]}' >"$O/new-order-dns"
printf '%s' '{"identifiers":[{"type":"dns","value":"www.acme.test"}],"replaces":"aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"}' >"$O/new-order-replaces"
printf '%s' '{"identifiers":[{"type":"ip","value":"127.0.0.1"},{"type":"ip","value":"::1"},{"type":"dns","value":"*.acme.test"}],"profile":"tls-server"}' >"$O/new-order-ip-wildcard"
for csr in "$T/acme-dns" "$T/acme-cn"; do
  case "$csr" in
    *dns) subj=/ ; san=DNS:www.acme.test,IP:127.0.0.1 ;;
    *cn) subj=/CN=www.acme.test ; san=DNS:www.acme.test ;;
  esac
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
    -subj "$subj" -addext "subjectAltName=$san" -outform DER -out "$csr.der" 2>/dev/null
  printf '{"csr":"%s"}' "$(basenc --base64url -w0 "$csr.der" | tr -d '=')" >"$O/finalize-$(basename "$csr")"
done

# --- DNS answers to the dns-01 TXT question (RFC 1035 wire format, as Knot answers) -------
python3 - "$OUT/acme_dns" <<'PY'
import struct, sys
out = sys.argv[1]
def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"
def txt(*parts):
    return b"".join(bytes([len(p)]) + p.encode() for p in parts)
def rr(owner, t, rdata):
    return owner + struct.pack(">HHIH", t, 1, 60, len(rdata)) + rdata
Q = "_acme-challenge.x.acme.test"
def msg(flags, answers, qid=0x5a17):
    h = struct.pack(">HHHHHH", qid, flags, 1, len(answers), 0, 0)
    return h + name(Q) + struct.pack(">HH", 16, 1) + b"".join(answers)
ptr = b"\xc0\x0c"
seeds = {
    "two-txt": msg(0x8180, [rr(ptr, 16, txt("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0")),
                            rr(ptr, 16, txt("a" * 43))]),
    "split-txt": msg(0x8580, [rr(ptr, 16, txt("LoqXcYV8q5ONbJQxbmR7", "SCTNo3tiAXDfowyjxAjEuX0"))]),
    "cname": msg(0x8180, [rr(ptr, 5, name("x.validation.acme.test")),
                          rr(name("x.validation.acme.test"), 16, txt("b" * 43))]),
    "nxdomain": msg(0x8583, []),
    "truncated": msg(0x8380, []),
    "refused": msg(0x8185, []),
}
for k, v in seeds.items():
    open(f"{out}/{k}", "wb").write(v)
PY

du -sh "$OUT"
for t in "${targets[@]}"; do printf '%-22s %3d files\n' "$t" "$(ls "$OUT/$t" | wc -l)"; done
