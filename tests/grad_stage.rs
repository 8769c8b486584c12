//! Snapshots of the forward-plus-backward graph (`dnnc ir --stage grad`) of every example
//! with a `train` block, and checks that the gradient graph stays lean: no gradient of the
//! input data is computed.

use dnnc::ir::{Op, print_graph};
use dnnc::runtime::train::step_graph;
use dnnc::sema::check_source;

fn examples() -> Vec<(String, String)> {
    let dir = format!("{}/examples", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("examples folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dnn"))
        .map(|p| {
            (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn grad_stage_of_every_example() {
    for (name, src) in examples() {
        let checked = check_source(&format!("examples/{name}.dnn"), &src);
        let program = checked.program.unwrap_or_else(|| panic!("{name} compiles"));
        let mut text = String::new();
        for t in program.trains.iter().filter(|t| t.train_graph.is_some()) {
            let g = step_graph(t).expect("differentiable");
            text.push_str(&print_graph(&g));
            // The input data is never differentiated: no matmul takes a gradient with
            // respect to the graph's first input as its result's shape.
            let x_ty = &g.inputs[0].ty;
            let grads_of_x = g.nodes.iter().filter(|n| matches!(n.op, Op::MatMul) && &n.ty == x_ty).count();
            assert_eq!(grads_of_x, 0, "{name}: a gradient of the input data was built");
        }
        insta::assert_snapshot!(format!("grad_{name}"), text);
    }
}
