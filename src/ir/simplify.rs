//! Graph simplification (to be written).
