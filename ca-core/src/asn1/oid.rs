//! Every object identifier privca names, in one place.
//!
//! Standard OIDs are taken from const-oid's database (`const_oid::db`, generated from the
//! RFCs' ASN.1 modules) under the names the code uses; only the few that no database
//! module carries are written out here, in [`private`] (Microsoft's) and beside their
//! standard (ecdsa-with-SHA1, DES-CBC). SCEP, EST, the CA and the fuzz targets all read
//! their OIDs from this module.

use const_oid::ObjectIdentifier;
use const_oid::db::{rfc2985, rfc4519, rfc5280, rfc5911, rfc5912, rfc6960, rfc8894};

// --- Extensions -------------------------------------------------------------------------

/// id-ce-invalidityDate (RFC 5280 §5.3.2), a CRL entry extension.
pub const INVALIDITY_DATE: ObjectIdentifier = rfc5280::ID_CE_INVALIDITY_DATE;
/// id-pe-acmeIdentifier (RFC 8737 §6.1), the extension of a tls-alpn-01 validation
/// certificate; no const-oid database module carries it.
pub const ACME_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.31");

// --- Signature algorithms (RFC 3279, RFC 4055, RFC 5758, RFC 8017) ------------------------

/// sha256WithRSAEncryption (RFC 4055 §5).
pub const SHA256_WITH_RSA: ObjectIdentifier = rfc5912::SHA_256_WITH_RSA_ENCRYPTION;
/// sha384WithRSAEncryption.
pub const SHA384_WITH_RSA: ObjectIdentifier = rfc5912::SHA_384_WITH_RSA_ENCRYPTION;
/// sha512WithRSAEncryption.
pub const SHA512_WITH_RSA: ObjectIdentifier = rfc5912::SHA_512_WITH_RSA_ENCRYPTION;
/// sha1WithRSAEncryption (RFC 3279 §2.2.1; accepted where a caller allows SHA-1, never
/// used to sign).
pub const SHA1_WITH_RSA: ObjectIdentifier = rfc5912::SHA_1_WITH_RSA_ENCRYPTION;
/// md5WithRSAEncryption (RFC 3279 §2.2.1; legacy SCEP clients only).
pub const MD5_WITH_RSA: ObjectIdentifier = rfc5912::MD_5_WITH_RSA_ENCRYPTION;
/// id-RSASSA-PSS (RFC 4055 §3.1).
pub const RSASSA_PSS: ObjectIdentifier = rfc5912::ID_RSASSA_PSS;
/// id-mgf1 (RFC 4055 §2.2).
pub const MGF1: ObjectIdentifier = rfc5912::ID_MGF_1;
/// rsaEncryption (RFC 3279 §2.3.1).
pub const RSA_ENCRYPTION: ObjectIdentifier = rfc5912::RSA_ENCRYPTION;
/// id-RSAES-OAEP (RFC 8017 A.2.1).
pub const RSAES_OAEP: ObjectIdentifier = rfc5912::ID_RSAES_OAEP;
/// id-pSpecified (RFC 8017 A.2.1).
pub const P_SPECIFIED: ObjectIdentifier = rfc5912::ID_P_SPECIFIED;
/// ecdsa-with-SHA256 (RFC 5758 §3.2).
pub const ECDSA_WITH_SHA256: ObjectIdentifier = rfc5912::ECDSA_WITH_SHA_256;
/// ecdsa-with-SHA384.
pub const ECDSA_WITH_SHA384: ObjectIdentifier = rfc5912::ECDSA_WITH_SHA_384;
/// ecdsa-with-SHA512.
pub const ECDSA_WITH_SHA512: ObjectIdentifier = rfc5912::ECDSA_WITH_SHA_512;
/// ecdsa-with-SHA1 (RFC 3279 §2.2.3; accepted on CSRs where a caller allows SHA-1). No
/// module of const-oid's database names it.
pub const ECDSA_WITH_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
/// id-ecPublicKey (RFC 5480 §2.1.1).
pub const EC_PUBLIC_KEY: ObjectIdentifier = rfc5912::ID_EC_PUBLIC_KEY;
/// secp256r1 (RFC 5480 §2.1.1.1).
pub const SECP256R1: ObjectIdentifier = rfc5912::SECP_256_R_1;
/// secp384r1 (RFC 5480 §2.1.1.1).
pub const SECP384R1: ObjectIdentifier = rfc5912::SECP_384_R_1;
/// secp521r1 (RFC 5480 §2.1.1.1).
pub const SECP521R1: ObjectIdentifier = rfc5912::SECP_521_R_1;
/// id-Ed25519 (RFC 8410 §3).
pub const ED25519: ObjectIdentifier = const_oid::db::rfc8410::ID_ED_25519;

// --- Digests ----------------------------------------------------------------------------

/// MD5 (RFC 1321; recognised so that SCEP can refuse it with badAlg).
pub const MD5: ObjectIdentifier = rfc5912::ID_MD_5;
/// id-sha1.
pub const SHA1: ObjectIdentifier = rfc5912::ID_SHA_1;
/// id-sha256 (RFC 5758 §2).
pub const SHA256: ObjectIdentifier = rfc5912::ID_SHA_256;
/// id-sha384.
pub const SHA384: ObjectIdentifier = rfc5912::ID_SHA_384;
/// id-sha512.
pub const SHA512: ObjectIdentifier = rfc5912::ID_SHA_512;

// --- Content encryption (RFC 8018 B.2, RFC 3565) ------------------------------------------

/// desCBC (RFC 8018 B.2.1; SCEP only where an endpoint enables it). No module of
/// const-oid's database names it.
pub const DES_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.7");
/// des-ede3-cbc (RFC 8018 B.2.2).
pub const DES_EDE3_CBC: ObjectIdentifier = rfc5911::DES_EDE_3_CBC;
/// id-aes128-CBC (RFC 3565 §4.1).
pub const AES128_CBC: ObjectIdentifier = rfc5911::ID_AES_128_CBC;
/// id-aes192-CBC.
pub const AES192_CBC: ObjectIdentifier = rfc5911::ID_AES_192_CBC;
/// id-aes256-CBC.
pub const AES256_CBC: ObjectIdentifier = rfc5911::ID_AES_256_CBC;

// --- CMS (RFC 5652) -----------------------------------------------------------------------

/// id-data (RFC 5652 §4).
pub const DATA: ObjectIdentifier = rfc5911::ID_DATA;
/// id-signedData (RFC 5652 §5.1).
pub const SIGNED_DATA: ObjectIdentifier = rfc5911::ID_SIGNED_DATA;
/// id-envelopedData (RFC 5652 §6.1).
pub const ENVELOPED_DATA: ObjectIdentifier = rfc5911::ID_ENVELOPED_DATA;
/// contentType attribute (RFC 5652 §11.1).
pub const CONTENT_TYPE: ObjectIdentifier = rfc5911::ID_CONTENT_TYPE;
/// messageDigest attribute (RFC 5652 §11.2).
pub const MESSAGE_DIGEST: ObjectIdentifier = rfc5911::ID_MESSAGE_DIGEST;
/// signingTime attribute (RFC 5652 §11.3).
pub const SIGNING_TIME: ObjectIdentifier = rfc5911::ID_SIGNING_TIME;

// --- PKCS#9 attributes (RFC 2985) ---------------------------------------------------------

/// challengePassword (RFC 2985 §5.4.1).
pub const CHALLENGE_PASSWORD: ObjectIdentifier = rfc2985::PKCS_9_AT_CHALLENGE_PASSWORD;
/// extensionRequest (RFC 2985 §5.4.2).
pub const EXTENSION_REQUEST: ObjectIdentifier = rfc2985::PKCS_9_AT_EXTENSION_REQUEST;

// --- SCEP attributes (RFC 8894 §3.2.1) ------------------------------------------------------

/// messageType (RFC 8894 §3.2.1.2).
pub const MESSAGE_TYPE: ObjectIdentifier = rfc8894::ID_MESSAGE_TYPE;
/// pkiStatus (RFC 8894 §3.2.1.3).
pub const PKI_STATUS: ObjectIdentifier = rfc8894::ID_PKI_STATUS;
/// failInfo (RFC 8894 §3.2.1.4).
pub const FAIL_INFO: ObjectIdentifier = rfc8894::ID_FAIL_INFO;
/// senderNonce (RFC 8894 §3.2.1.5).
pub const SENDER_NONCE: ObjectIdentifier = rfc8894::ID_SENDER_NONCE;
/// recipientNonce (RFC 8894 §3.2.1.5).
pub const RECIPIENT_NONCE: ObjectIdentifier = rfc8894::ID_RECIPIENT_NONCE;
/// transactionID (RFC 8894 §3.2.1.1).
pub const TRANSACTION_ID: ObjectIdentifier = rfc8894::ID_TRANSACTION_ID;
/// id-scep-failInfoText (RFC 8894 §3.2.1.4.6).
pub const FAIL_INFO_TEXT: ObjectIdentifier = rfc8894::ID_SCEP_FAIL_INFO_TEXT;

// --- Names and extensions (RFC 4519, RFC 5280) ----------------------------------------------

/// emailAddress, the PKCS#9 name attribute (RFC 2985 §5.2.1).
pub const EMAIL_ADDRESS: ObjectIdentifier = rfc2985::PKCS_9_AT_EMAIL_ADDRESS;
/// commonName (RFC 4519 §2.3).
pub const COMMON_NAME: ObjectIdentifier = rfc4519::COMMON_NAME;
/// id-ce-subjectAltName (RFC 5280 §4.2.1.6).
pub const SUBJECT_ALT_NAME: ObjectIdentifier = rfc5280::ID_CE_SUBJECT_ALT_NAME;
/// id-ce-authorityKeyIdentifier (RFC 5280 §4.2.1.1).
pub const AUTHORITY_KEY_IDENTIFIER: ObjectIdentifier = rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER;
/// anyPolicy (RFC 5280 §4.2.1.4).
pub const ANY_POLICY: ObjectIdentifier = rfc5280::ANY_POLICY;
/// id-ad-ocsp (RFC 5280 §4.2.2.1).
pub const AD_OCSP: ObjectIdentifier = rfc5280::ID_AD_OCSP;
/// id-ad-caIssuers (RFC 5280 §4.2.2.1).
pub const AD_CA_ISSUERS: ObjectIdentifier = rfc5280::ID_AD_CA_ISSUERS;
/// id-kp-serverAuth (RFC 5280 §4.2.1.12).
pub const KP_SERVER_AUTH: ObjectIdentifier = rfc5280::ID_KP_SERVER_AUTH;
/// id-kp-clientAuth.
pub const KP_CLIENT_AUTH: ObjectIdentifier = rfc5280::ID_KP_CLIENT_AUTH;
/// id-kp-codeSigning.
pub const KP_CODE_SIGNING: ObjectIdentifier = rfc5280::ID_KP_CODE_SIGNING;
/// id-kp-emailProtection.
pub const KP_EMAIL_PROTECTION: ObjectIdentifier = rfc5280::ID_KP_EMAIL_PROTECTION;
/// id-kp-timeStamping.
pub const KP_TIME_STAMPING: ObjectIdentifier = rfc5280::ID_KP_TIME_STAMPING;
/// id-kp-OCSPSigning.
pub const KP_OCSP_SIGNING: ObjectIdentifier = rfc5280::ID_KP_OCSP_SIGNING;

// --- OCSP (RFC 6960) --------------------------------------------------------------------------

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
pub const OCSP_NOCHECK: ObjectIdentifier = rfc6960::ID_PKIX_OCSP_NOCHECK;
/// id-pkix-ocsp-basic (RFC 6960 §4.2.1).
pub const OCSP_BASIC: ObjectIdentifier = rfc6960::ID_PKIX_OCSP_BASIC;
/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1, RFC 9654).
pub const OCSP_NONCE: ObjectIdentifier = rfc6960::ID_PKIX_OCSP_NONCE;

// --- Private arcs ---------------------------------------------------------------------------

/// Microsoft's OIDs (arc 1.3.6.1.4.1.311), which no RFC module defines. The Intune and
/// Active Directory ones privca uses live here and nowhere else.
pub mod private {
    use const_oid::ObjectIdentifier;

    /// szOID_NTDS_CA_SECURITY_EXT: the SID extension of strong certificate mapping
    /// (Microsoft KB5014754).
    pub const MS_NTDS_CA_SECURITY_EXT: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.25.2");
    /// szOID_NT_PRINCIPAL_NAME: the user principal name otherName (a UTF8String), read
    /// by Windows logon and Intune user certificates (Microsoft KB281245, MS-WCCE).
    pub const MS_UPN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.20.2.3");
}

pub use private::{MS_NTDS_CA_SECURITY_EXT, MS_UPN};

// --- otherName forms (RFC 5280 §4.2.1.6) -----------------------------------------------

/// id-on-permanentIdentifier (RFC 4043 §2). No module of const-oid's database names it.
pub const PERMANENT_IDENTIFIER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.8.3");
/// id-on-hardwareModuleName (RFC 4108 §5).
pub const HARDWARE_MODULE_NAME: ObjectIdentifier = rfc5911::ID_ON_HARDWARE_MODULE_NAME;

#[cfg(test)]
mod tests {
    use super::*;

    /// The names stand for the dotted values the code used to write out by hand.
    #[test]
    fn database_names_are_the_expected_arcs() {
        for (oid, dotted) in [
            (SHA256_WITH_RSA, "1.2.840.113549.1.1.11"),
            (SHA1_WITH_RSA, "1.2.840.113549.1.1.5"),
            (MD5_WITH_RSA, "1.2.840.113549.1.1.4"),
            (RSASSA_PSS, "1.2.840.113549.1.1.10"),
            (MGF1, "1.2.840.113549.1.1.8"),
            (RSAES_OAEP, "1.2.840.113549.1.1.7"),
            (P_SPECIFIED, "1.2.840.113549.1.1.9"),
            (ECDSA_WITH_SHA384, "1.2.840.10045.4.3.3"),
            (EC_PUBLIC_KEY, "1.2.840.10045.2.1"),
            (SECP384R1, "1.3.132.0.34"),
            (MD5, "1.2.840.113549.2.5"),
            (SHA1, "1.3.14.3.2.26"),
            (SHA512, "2.16.840.1.101.3.4.2.3"),
            (DES_EDE3_CBC, "1.2.840.113549.3.7"),
            (AES192_CBC, "2.16.840.1.101.3.4.1.22"),
            (DATA, "1.2.840.113549.1.7.1"),
            (ENVELOPED_DATA, "1.2.840.113549.1.7.3"),
            (SIGNING_TIME, "1.2.840.113549.1.9.5"),
            (CHALLENGE_PASSWORD, "1.2.840.113549.1.9.7"),
            (EXTENSION_REQUEST, "1.2.840.113549.1.9.14"),
            (MESSAGE_TYPE, "2.16.840.1.113733.1.9.2"),
            (TRANSACTION_ID, "2.16.840.1.113733.1.9.7"),
            (FAIL_INFO_TEXT, "1.3.6.1.5.5.7.24.1"),
            (EMAIL_ADDRESS, "1.2.840.113549.1.9.1"),
            (COMMON_NAME, "2.5.4.3"),
            (SUBJECT_ALT_NAME, "2.5.29.17"),
            (ANY_POLICY, "2.5.29.32.0"),
            (AD_OCSP, "1.3.6.1.5.5.7.48.1"),
            (KP_OCSP_SIGNING, "1.3.6.1.5.5.7.3.9"),
            (OCSP_NONCE, "1.3.6.1.5.5.7.48.1.2"),
        ] {
            assert_eq!(oid.to_string(), dotted);
        }
    }
}
