//! The error type of the store crate.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The write conflicts with what is stored (serial used before, already revoked, …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database is held by another process (a running server).
    #[error("the database {0} is in use by another process (is `privca serve` running?)")]
    Locked(String),
    /// Stored data could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The backend failed (I/O, database engine).
    #[error("storage backend: {0}")]
    Backend(String),
    /// An argument is malformed (for example a serial that is empty or longer than 20
    /// octets, or a request whose fields contradict each other).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The database was written by a newer privca with a schema this version cannot read.
    #[error(
        "the database has schema version {found}, this privca supports up to {supported}; \
         upgrade privca"
    )]
    UnsupportedSchema {
        /// Schema version stored in the database.
        found: u64,
        /// Newest schema version this code understands.
        supported: u64,
    },
    /// The database schema is not the one this code knows (not migrated yet, or changed
    /// outside privca): the message says what to do.
    #[error("database schema: {0}")]
    Schema(String),
    /// Storage is unavailable for now (disk full, I/O error): nothing was written, and the
    /// same request may succeed later. The store reopens its database on the next write.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The store has been shut down.
    #[error("store is closed")]
    Closed,
}
