//! (this stage lands in a later commit)
