//! Mapping expressions (CEL) and roster's function library. Being written.
