//! Approvals (`spec/pipeline.md` "Approvals"): the pending approval of an `approval_required`
//! decision, created or reused ([`create_or_reuse`]), the decisions of approvers ([`decide`]) and the
//! preview they see ([`open_preview`]), the summary as workloads and approvers see it ([`summary`]),
//! and the approver webhook ([`webhook`]).

mod create;
mod decide;
pub mod summary;
pub mod webhook;

pub use create::create_or_reuse;
pub use decide::{Decided, Verdict, decide, open_preview};
pub use summary::{ApprovalSummary, approval_summary};
