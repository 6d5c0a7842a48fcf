//! EST (RFC 7030, RFC 8951): the enrollment service, its encodings and authentication,
//! and the HTTP mapping. Policy stays in ca-core (DESIGN.md decision 1).
