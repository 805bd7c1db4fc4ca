//! Approvals (`spec/pipeline.md` "Approvals"): the pending approval of an `approval_required`
//! decision, created or reused ([`create_or_reuse`]), its summary as workloads and approvers see it
//! ([`summary`]), and the approver webhook ([`webhook`]).

mod create;
pub mod summary;
pub mod webhook;

pub use create::create_or_reuse;
pub use summary::{ApprovalSummary, approval_summary};
