//! The sessions conformance cases (`db::conformance_sessions`) on SQLite.

use crate::db::{self, conformance_sessions as cases, test_dir, Store, Workload};

fn store(name: &str) -> Box<dyn Store> {
    db::open(test_dir(name).join("a.db"), Workload::General).unwrap()
}

#[test]
fn tool_results_link_to_the_thread_that_made_the_call_in_one_batch_or_across_batches() {
    cases::tool_results_link_to_the_thread_that_made_the_call_in_one_batch_or_across_batches(&mut *store("threads"));
}

#[test]
fn sessions_group_by_client_session_else_thread_and_page_stably_while_records_arrive() {
    cases::sessions_group_by_client_session_else_thread_and_page_stably_while_records_arrive(&mut *store("sessions"));
}

#[test]
fn usage_rows_sum_per_user_model_and_day() {
    cases::usage_rows_sum_per_user_model_and_day(&mut *store("usage"));
}

#[test]
fn tokens_keep_their_role_and_old_rows_are_users() {
    cases::tokens_keep_their_role_and_old_rows_are_users(&mut *store("roles"));
}
