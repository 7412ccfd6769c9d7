//! The PostgreSQL store against a real server (written below).
