//! The sink thread: receives compact records over a bounded crossbeam channel, batches them into SQLite
//! transactions (WAL), writes structured "interception log" lines, purges by retention, and drains fully on
//! shutdown. Never runs on a worker.
