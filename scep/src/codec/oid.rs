//! Object identifiers used by SCEP (RFC 8894 §3, RFC 5652, RFC 3565, RFC 8017), under
//! the names the codec uses. They all come from the one table, `ca_core::asn1::oid`
//! (const-oid's database).

/// ecdsa-with-SHA256 (RFC 5758 §3.2).
pub use ca_core::asn1::oid::ECDSA_WITH_SHA256 as ECDSA_SHA256;
/// ecdsa-with-SHA384.
pub use ca_core::asn1::oid::ECDSA_WITH_SHA384 as ECDSA_SHA384;
/// ecdsa-with-SHA512.
pub use ca_core::asn1::oid::ECDSA_WITH_SHA512 as ECDSA_SHA512;
pub use ca_core::asn1::oid::{
    AES128_CBC, AES192_CBC, AES256_CBC, CONTENT_TYPE, DATA, DES_CBC, DES_EDE3_CBC, EC_PUBLIC_KEY,
    ENVELOPED_DATA, FAIL_INFO, FAIL_INFO_TEXT, MD5, MD5_WITH_RSA, MESSAGE_DIGEST, MESSAGE_TYPE,
    MGF1, P_SPECIFIED, PKI_STATUS, RECIPIENT_NONCE, RSA_ENCRYPTION, RSAES_OAEP, SENDER_NONCE, SHA1,
    SHA1_WITH_RSA, SHA256, SHA256_WITH_RSA, SHA384, SHA384_WITH_RSA, SHA512, SHA512_WITH_RSA,
    SIGNED_DATA, SIGNING_TIME, TRANSACTION_ID,
};
