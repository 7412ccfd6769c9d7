//! Gateway user tokens: creation, hashing, listing, revocation (SQLite), and the read-mostly cache the
//! workers check tokens against without touching the database.
