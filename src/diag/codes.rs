//! Every error code, with its one-line title and the long explanation `dnnc explain` prints.
//! Codes are never reused: a retired code keeps its entry and says so.

macro_rules! codes {
    ($($code:ident: $title:literal => $text:literal,)*) => {
        /// A diagnostic code.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum Code { $($code,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$code,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$code => stringify!($code),)* }
            }

            pub fn title(self) -> &'static str {
                match self { $(Code::$code => $title,)* }
            }

            pub fn explanation(self) -> &'static str {
                match self { $(Code::$code => $text,)* }
            }
        }
    };
}

codes! {
    E0001: "syntax error" => "The text does not follow the grammar of `.dnn` files (grammar/dnn.pest).\nThe caret marks the first token that could not be parsed and the message lists what\nwould have been accepted there. Each top-level item is parsed on its own, so an error\nin one item does not hide errors in the next.",
    E0002: "the file is not valid UTF-8" => "`.dnn` files are UTF-8 text. The byte offset of the first invalid sequence is given;\nre-save the file as UTF-8.",
    E0003: "nesting too deep" => "Parentheses, brackets and braces may nest at most 128 deep, and an expression at most\n256 deep counting its operators (`a + b + ...`) and brackets together. Deeper nesting\nis refused rather than risking the compiler's stack; bind parts to names with `let`.",
    E0004: "number literal out of range" => "Integer literals must fit in a signed 64-bit integer and float literals must be finite\nin double precision.",
    E0005: "invalid string literal" => "A string has an unknown escape sequence. The escapes are \\\\, \\\", \\n and \\t.",
    E0101: "unknown name" => "A name is used that no `let`, parameter, definition, import or built-in provides.\nNames from the standard library need a `use`, for example `use std::layers::{Dense}`.",
    E0102: "unknown module or import" => "A `use` names a module or an item that does not exist. Standard library modules are\n`std::layers`, `std::activations`, `std::losses` and `std::math`; other paths name `.dnn`\nfiles relative to the importing file (`use blocks::{Res}` reads `blocks.dnn`).",
    E0103: "duplicate definition" => "Two definitions in one scope have the same name. Rename one of them.",
    E0104: "wrong number of arguments" => "A function, layer or model was called with more positional arguments than it has\nparameters, or without a parameter that has no default.",
    E0105: "unknown named argument" => "A call names an argument that the callee does not declare.",
    E0106: "argument given twice" => "An argument was given both by position and by name, or twice by name.",
    E0107: "not callable" => "Only functions, layers, layer instances and models can be called.",
    E0108: "wrong kind of value" => "A value of one kind (a tensor, an integer, a function, a string ...) was given where\nanother kind is required, for example a tensor where a layer expects its number of\nunits, or a string where an axis is expected.",
    E0109: "cyclic definition" => "A function, layer or model calls itself, directly or through others. Recursion is not\nsupported: use `scan` for recurrence over time.",
    E0110: "missing forward" => "A layer needs exactly one `forward(...)` member that says how it maps its input.",
    E0201: "shapes do not broadcast" => "Elementwise operations follow NumPy broadcasting: shapes are aligned at their last\naxis, and each pair of dimensions must be equal or one of them must be 1. A symbolic\ndimension such as `B` matches only itself and 1: the compiler does not assume that the\nbatch has any particular size.",
    E0202: "shape mismatch in matrix product" => "`a @ b` multiplies the last two axes: `[.., M, K] @ [.., K, N] -> [.., M, N]`. The inner\ndimensions `K` must be equal. Dense layers need a flat input: put `Flatten()` before them.",
    E0203: "element type mismatch" => "The operands of an operation must have the same element type, and some operations\naccept only floats (exp, log, matmul) or only bools. Use `cast(x, f32)` to convert.",
    E0204: "reshape changes the number of elements" => "A reshape must keep the number of elements. `-1` stands for the one dimension that\nmakes the counts agree.",
    E0205: "type does not match its annotation" => "A value's inferred type differs from the type written for it: the declared return type\nof a function, layer or model, or a parameter's declared type at a call.",
    E0206: "axis out of range" => "Axes count from 0 for the first dimension and from -1 for the last; a tensor of rank r\nhas axes -r..r-1.",
    E0207: "dimension bound twice with different sizes" => "A symbolic dimension (`B`, `IN`, `N`) takes its size at its first use in a signature and\nmust have the same size at every later use in that signature.",
    E0208: "invalid shape" => "A shape must be a list of non-negative dimensions, with at most one `-1`.",
    E0209: "model output does not fit the loss" => "The loss compares the model's output with the labels: categorical and sparse categorical\ncross-entropy need `f32[B, N]` class scores, binary cross-entropy `f32[B]` or `f32[B, 1]`,\nand regression losses an output the shape of the labels.",
    E0210: "labels do not fit the loss" => "Sparse categorical cross-entropy takes integer class ids (`i64[B]`); categorical\ncross-entropy takes one-hot float labels (`f32[B, N]`); binary cross-entropy takes 0/1\nlabels. A dataset's labels decide which loss fits it.",
    E0211: "data does not fit the model input" => "The features a data source yields must have the shape and element type of the model's\ninput, apart from the batch dimension.",
    E0212: "window larger than input" => "A convolution or pooling with `valid` padding only uses windows that fit entirely\ninside its input, so the (dilated) window must not be larger than the input's height or\nwidth. Each pooling layer halves the image: after a few of them a small image has no\nroom left. Use `padding: \"same\"`, a smaller window or fewer pooling layers.",
    E0213: "invalid convolution or pooling" => "`conv2d`, `max_pool2d` and `avg_pool2d` take NHWC images `[B, H, W, C]` whose height\nand width are literal sizes; a convolution kernel is `[KH, KW, C, F]` and its `C` must be\nthe input's channel count. Window sizes, strides and dilations are positive integers (or\npairs of them), and `padding` is \"valid\" or \"same\".",
    E0214: "invalid slice" => "`slice(x, start, stop)` keeps elements `start..stop` of the last axis of `x`, and\n`split(x, parts)` cuts that axis into `parts` equal pieces. The last axis must have a\nsize known while compiling, `0 <= start < stop <= size`, and `parts` must divide the size.",
    E0301: "not differentiable" => "The loss must be a float scalar that depends on the trained parameters through\ndifferentiable operations.",
    E0401: "unknown data source" => "A `data = ...` setting names a source the runtime does not know. The sources are\n`mnist`, `fashion_mnist`, `cifar10`, `imdb`, `idx`, `csv`, `npz` and `random`.",
    E0402: "unknown optimizer or optimizer argument" => "The optimizers are `SGD(lr, momentum, nesterov, weight_decay)`, `Adam(lr, beta1, beta2,\nepsilon, weight_decay)` and `RMSprop(lr, rho, momentum, epsilon)`; each also takes\n`clipnorm`, `clipvalue` and `global_clipnorm`.",
    E0403: "invalid training setting" => "A `train` or `evaluate` block has a setting it does not know, lacks one it needs\n(`data`, and for `train` also `loss` and `optimizer`), or has a value out of range\n(epochs and batch must be positive, validation in [0, 1)).",
    E0404: "unknown metric" => "The metrics are `accuracy`, `precision`, `recall`, `f1`, `mae`, `mse` and\n`confusion_matrix`.",
    E0405: "unknown model" => "A `train` or `evaluate` block names a model that is not defined or imported.",
    E0406: "training diverged" => "A NaN or an infinity appeared while training. The error names the step and the first\nop that produced a non-finite value. Common causes: a learning rate that is too high,\nlog of zero in a hand-written loss (use the stable stdlib losses), or NaNs in the data.",
    E0407: "unknown learning-rate schedule or schedule argument" => "The schedules are `constant(lr)`, `step_decay(lr, step_size, gamma)`,\n`exponential_decay(lr, decay_steps, decay_rate, staircase)` and\n`cosine_decay(lr, decay_steps, alpha, warmup_steps)`; `lr` defaults to the optimizer's.",
    W0001: "unused variable" => "A `let` binding is never used.",
}

/// The long explanation of a code given as text (`E0201`), for `dnnc explain`.
pub fn explain(code: &str) -> Option<String> {
    let c = Code::ALL.iter().find(|c| c.as_str().eq_ignore_ascii_case(code))?;
    Some(format!("{}: {}\n\n{}\n", c.as_str(), c.title(), c.explanation()))
}
