//! PostgreSQL end to end: the test cluster harness itself, and several gateways on one database.

#[path = "../support/pg_cluster.rs"]
mod pg_cluster;

pub(crate) use pg_cluster::PgCluster;

#[test]
fn harness_starts_restarts_and_removes_a_cluster() {
    let root;
    {
        let cluster = PgCluster::start();
        root = cluster.root().to_owned();
        assert_eq!(cluster.psql("SHOW server_encoding"), "UTF8");
        cluster.psql("CREATE TABLE t (id int PRIMARY KEY)");
        cluster.psql("INSERT INTO t VALUES (1) ON CONFLICT (id) DO NOTHING");
        cluster.pg_ctl(&["restart", "-m", "fast", "-w"]);
        cluster.wait_ready();
        assert_eq!(cluster.psql("SELECT count(*) FROM t"), "1");
        assert!(cluster.log_file().exists());
        assert!(cluster.port() > 0);
    }
    assert!(!root.exists(), "cluster dir {} left behind", root.display());
}
