//! Sliding-window geometry shared by convolution and pooling: output sizes and padding
//! along one spatial axis, with Keras' (TensorFlow's) rules.
//!
//! A window of `size` taps spaced `dilation` apart spans `(size − 1)·dilation + 1`
//! elements. With `valid` padding the output has `(input − span) / stride + 1` positions
//! and needs `span ≤ input`; with `same` padding it has `ceil(input / stride)` positions and
//! the input is padded by `max((out − 1)·stride + span − input, 0)` elements, half of them
//! (rounded down) before and the rest after: the odd one goes at the bottom or right.
//! Output position `o` reads input positions `o·stride − pad_before + t·dilation` for taps
//! `t` in `0..size`; positions outside `0..input` are padding.

use crate::ir::Padding;

/// One spatial axis of a sliding window, with every size resolved.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AxisWindow {
    pub input: usize,
    pub size: usize,
    pub stride: usize,
    pub dilation: usize,
    pub output: usize,
    pub pad_before: usize,
}

/// The number of input elements a window of `size` taps `dilation` apart covers.
pub fn window_span(size: usize, dilation: usize) -> usize {
    size.saturating_sub(1) * dilation + 1
}

impl AxisWindow {
    /// The geometry of one axis, or `None` when a `valid` window does not fit in the input
    /// (or a size, stride or dilation is zero).
    pub fn new(input: usize, size: usize, stride: usize, dilation: usize, padding: Padding) -> Option<Self> {
        if size == 0 || stride == 0 || dilation == 0 || input == 0 {
            return None;
        }
        let span = window_span(size, dilation);
        let (output, pad_before) = match padding {
            Padding::Valid if span > input => return None,
            Padding::Valid => ((input - span) / stride + 1, 0),
            Padding::Same => {
                let output = input.div_ceil(stride);
                let total = ((output - 1) * stride + span).saturating_sub(input);
                (output, total / 2)
            }
        };
        Some(AxisWindow { input, size, stride, dilation, output, pad_before })
    }

    /// The input position tap `t` of output position `o` reads, if it is not padding.
    #[inline]
    pub fn source(&self, o: usize, t: usize) -> Option<usize> {
        (o * self.stride + t * self.dilation).checked_sub(self.pad_before).filter(|&p| p < self.input)
    }
}

/// The geometry of a 2-D window over `[B, H, W, C]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Window2D {
    pub batch: usize,
    pub channels: usize,
    pub rows: AxisWindow,
    pub cols: AxisWindow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // TensorFlow: input 5, window 2, stride 2 -> output 3, total padding 1, all after.
        let a = AxisWindow::new(5, 2, 2, 1, Padding::Same).unwrap();
        assert_eq!((a.output, a.pad_before), (3, 0));
        assert_eq!(a.source(2, 1), None);
        // Input 7, window 3, stride 1 -> output 7, padding 1 before and 1 after.
        let a = AxisWindow::new(7, 3, 1, 1, Padding::Same).unwrap();
        assert_eq!((a.output, a.pad_before), (7, 1));
        // Input 6, window 4, stride 1 -> padding 3: 1 before, 2 after.
        let a = AxisWindow::new(6, 4, 1, 1, Padding::Same).unwrap();
        assert_eq!((a.output, a.pad_before), (6, 1));
    }

    #[test]
    fn valid_padding_drops_partial_windows() {
        let a = AxisWindow::new(28, 3, 1, 1, Padding::Valid).unwrap();
        assert_eq!(a.output, 26);
        let a = AxisWindow::new(26, 2, 2, 1, Padding::Valid).unwrap();
        assert_eq!(a.output, 13);
        // A dilated 3-tap window spans 5 elements.
        let a = AxisWindow::new(9, 3, 2, 2, Padding::Valid).unwrap();
        assert_eq!(a.output, 3);
        assert_eq!(AxisWindow::new(4, 3, 1, 2, Padding::Valid), None);
        assert_eq!(AxisWindow::new(4, 3, 0, 1, Padding::Same), None);
    }
}
