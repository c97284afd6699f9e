//! The compiler's output files besides code: `NAME.h`, `NAME.json`, `NAME.weights`.
//! (Not yet written.)
