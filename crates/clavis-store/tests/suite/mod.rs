//! The backend-independent story of a [`Store`](clavis_store::Store): every
//! `pub async fn` here takes a fresh, empty `&dyn Store` and panics on a
//! broken contract. A backend's test binary runs each one on its own database.

pub mod atomic;
pub mod auth_failures;
pub mod canary;
pub mod cascade;
pub mod cluster;
pub mod copy;
pub mod expiry;
pub mod fixtures;
pub mod lists;
pub mod nodes;
pub mod records;
pub mod retention;
pub mod revocation;
pub mod rules;
pub mod sealed;
pub mod signins;

pub use atomic::*;
pub use auth_failures::*;
pub use canary::*;
pub use cascade::*;
pub use cluster::*;
pub use copy::*;
pub use expiry::*;
pub use lists::*;
pub use nodes::*;
pub use records::*;
pub use retention::*;
pub use revocation::*;
pub use rules::*;
pub use sealed::*;
pub use signins::*;
