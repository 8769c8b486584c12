//! The `dnnc` command line.

fn main() {
    println!("dnnc {}", env!("CARGO_PKG_VERSION"));
}
