//! Plain copies: outputs that are constants, inputs or aliases of other values.

use crate::kir::build::KernelBuilder;
use crate::kir::{e, BufId, Kernel};

/// `dst[i] = src[i]` for `len` elements (same dtype).
pub fn copy_kernel(name: &str, src: BufId, dst: BufId, len: usize) -> Kernel {
    let mut k = KernelBuilder::new(format!("{name}.copy"));
    k.for_(len, |k, i| k.store(dst, i.clone(), e::load(src, i)));
    k.finish()
}
