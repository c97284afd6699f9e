//! Return codes of `NAME_run` (`EDGEC_*` in the C header).

/// `NAME_run`'s result: 0 is success, every other value an `EDGEC_ERR_*` code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    /// `weights` is NULL but the model was compiled without `--embed-weights`.
    WeightsNull = 1,
    /// The blob does not start with the edgec magic.
    WeightsMagic = 2,
    /// The blob's format version is not the one the code was compiled for.
    WeightsVersion = 3,
    /// The blob belongs to another model (or another compilation of it).
    WeightsHash = 4,
    /// The blob's recorded size is not the size the code expects.
    WeightsSize = 5,
    /// An index input (Gather, embedding lookup ...) is out of range.
    IndexOutOfRange = 6,
    /// The arena is not aligned to `NAME_ARENA_ALIGN`.
    ArenaAlign = 7,
    /// A required pointer (arena, inputs, outputs) is NULL.
    NullArgument = 8,
    /// A shape family's `NAME_run_at` got a dimension value it was not compiled for.
    DimOutOfRange = 9,
}

impl Status {
    pub fn from_code(code: i32) -> Option<Status> {
        use Status::*;
        Some(match code {
            0 => Ok,
            1 => WeightsNull,
            2 => WeightsMagic,
            3 => WeightsVersion,
            4 => WeightsHash,
            5 => WeightsSize,
            6 => IndexOutOfRange,
            7 => ArenaAlign,
            8 => NullArgument,
            9 => DimOutOfRange,
            _ => return None,
        })
    }

    /// The C macro name of the code.
    pub fn c_name(self) -> &'static str {
        use Status::*;
        match self {
            Ok => "EDGEC_OK",
            WeightsNull => "EDGEC_ERR_WEIGHTS_NULL",
            WeightsMagic => "EDGEC_ERR_WEIGHTS_MAGIC",
            WeightsVersion => "EDGEC_ERR_WEIGHTS_VERSION",
            WeightsHash => "EDGEC_ERR_WEIGHTS_HASH",
            WeightsSize => "EDGEC_ERR_WEIGHTS_SIZE",
            IndexOutOfRange => "EDGEC_ERR_INDEX_OUT_OF_RANGE",
            ArenaAlign => "EDGEC_ERR_ARENA_ALIGN",
            NullArgument => "EDGEC_ERR_NULL_ARGUMENT",
            DimOutOfRange => "EDGEC_ERR_DIM_OUT_OF_RANGE",
        }
    }

    pub const ALL: [Status; 10] = [
        Status::Ok,
        Status::WeightsNull,
        Status::WeightsMagic,
        Status::WeightsVersion,
        Status::WeightsHash,
        Status::WeightsSize,
        Status::IndexOutOfRange,
        Status::ArenaAlign,
        Status::NullArgument,
        Status::DimOutOfRange,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C header and this enum must agree.
    #[test]
    fn c_header_matches() {
        let header = include_str!("../include/edgec_runtime.h");
        for s in Status::ALL {
            let line = header.lines().find(|l| l.starts_with(&format!("#define {} ", s.c_name())));
            let line = line.unwrap_or_else(|| panic!("{} missing from the C header", s.c_name()));
            let value: i32 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
            assert_eq!(value, s as i32, "{}", s.c_name());
            assert_eq!(Status::from_code(value), Some(s));
        }
    }
}
