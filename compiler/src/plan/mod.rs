//! Static memory planning: every intermediate tensor gets an offset in one arena whose
//! size is known at compile time.

pub mod layout;
pub mod memory;
