//! Seeded data augmentation of image batches `[N, H, W, C]` (NHWC), `u8` or `f32`.
//!
//! Each image independently gets a random shift (whole pixels, zero fill), a horizontal
//! flip with probability 1/2, and a small rotation about its centre (bilinear, zero fill),
//! each only when enabled in [`Augment`]. Randomness comes from the caller's [`Rng`], so a
//! seed reproduces the same augmented batch. The primitives are public for tests and reuse.

use ndarray::{Array3, ArrayD, ArrayView3, Axis, Ix3};

use super::error::DataError;
use crate::runtime::rng::Rng;

/// Which random transforms to apply, and how strong.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Augment {
    /// Largest shift in pixels along each axis; 0 disables shifts.
    pub max_shift: usize,
    /// Flip left-right with probability 1/2.
    pub flip: bool,
    /// Largest rotation in degrees, either way; 0 disables rotation.
    pub max_degrees: f32,
}

/// An element type images are stored in.
pub trait Pixel: Copy + Default + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
}

impl Pixel for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> f32 {
        v
    }
}

impl Pixel for u8 {
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn from_f32(v: f32) -> u8 {
        v.round().clamp(0.0, 255.0) as u8
    }
}

impl Augment {
    /// Transforms every image of `batch` in place.
    pub fn apply<T: Pixel>(&self, batch: &mut ArrayD<T>, rng: &mut Rng) -> Result<(), DataError> {
        if batch.ndim() != 4 {
            return Err(DataError::Usage(format!(
                "augmentation needs a batch of images [N, H, W, C], got shape {:?}",
                batch.shape()
            )));
        }
        for mut image in batch.axis_iter_mut(Axis(0)) {
            let Ok(mut image) = image.view_mut().into_dimensionality::<Ix3>() else { continue };
            let mut current = image.to_owned();
            if self.max_shift > 0 {
                let span = 2 * self.max_shift as u64 + 1;
                let dy = rng.below(span) as isize - self.max_shift as isize;
                let dx = rng.below(span) as isize - self.max_shift as isize;
                current = shift(&current.view(), dy, dx);
            }
            if self.flip && rng.below(2) == 1 {
                current = flip_horizontal(&current.view());
            }
            if self.max_degrees > 0.0 {
                let degrees = (rng.uniform() as f32 * 2.0 - 1.0) * self.max_degrees;
                current = rotate(&current.view(), degrees);
            }
            image.assign(&current);
        }
        Ok(())
    }
}

/// Mirrors an image `[H, W, C]` left to right.
pub fn flip_horizontal<T: Pixel>(image: &ArrayView3<T>) -> Array3<T> {
    let mut out = image.to_owned();
    out.invert_axis(Axis(1));
    out.as_standard_layout().into_owned()
}

/// Moves an image `[H, W, C]` down by `dy` and right by `dx` pixels, filling with zeros.
pub fn shift<T: Pixel>(image: &ArrayView3<T>, dy: isize, dx: isize) -> Array3<T> {
    let (h, w, _) = image.dim();
    let mut out = Array3::from_elem(image.raw_dim(), T::default());
    for y in 0..h {
        for x in 0..w {
            let (sy, sx) = (y as isize - dy, x as isize - dx);
            if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx) {
                out.slice_mut(ndarray::s![y, x, ..]).assign(&image.slice(ndarray::s![
                    sy as usize,
                    sx as usize,
                    ..
                ]));
            }
        }
    }
    out
}

/// Rotates an image `[H, W, C]` by `degrees` counter-clockwise about its centre, sampling
/// bilinearly; points that come from outside the image are zero.
pub fn rotate<T: Pixel>(image: &ArrayView3<T>, degrees: f32) -> Array3<T> {
    let (h, w, c) = image.dim();
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let mut out = Array3::from_elem((h, w, c), T::default());
    let at = |y: isize, x: isize, ch: usize| -> f32 {
        if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
            image[[y as usize, x as usize, ch]].to_f32()
        } else {
            0.0
        }
    };
    for y in 0..h {
        for x in 0..w {
            // The inverse rotation maps each output pixel to where it comes from; rows grow
            // downwards, so counter-clockwise on screen flips the sign of the sine.
            let (ry, rx) = (y as f32 - cy, x as f32 - cx);
            let sy = cos * ry + sin * rx + cy;
            let sx = -sin * ry + cos * rx + cx;
            let (y0, x0) = (sy.floor(), sx.floor());
            let (fy, fx) = (sy - y0, sx - x0);
            let (y0, x0) = (y0 as isize, x0 as isize);
            for ch in 0..c {
                let v = (1.0 - fy) * ((1.0 - fx) * at(y0, x0, ch) + fx * at(y0, x0 + 1, ch))
                    + fy * ((1.0 - fx) * at(y0 + 1, x0, ch) + fx * at(y0 + 1, x0 + 1, ch));
                out[[y, x, ch]] = T::from_f32(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn image(h: usize, w: usize, c: usize) -> Array3<u8> {
        Array3::from_shape_fn((h, w, c), |(y, x, ch)| (1 + y * 31 + x * 7 + ch * 3) as u8)
    }

    #[test]
    fn flip_twice_is_identity_and_flip_mirrors() {
        let img = image(5, 6, 3);
        let once = flip_horizontal(&img.view());
        assert_eq!(once[[2, 0, 1]], img[[2, 5, 1]]);
        assert_eq!(flip_horizontal(&once.view()), img);
    }

    #[test]
    fn shifts_move_pixels_and_fill_with_zero() {
        let img = image(4, 5, 2);
        assert_eq!(shift(&img.view(), 0, 0), img);
        let moved = shift(&img.view(), 1, -2);
        assert_eq!(moved[[1, 0, 1]], img[[0, 2, 1]]);
        assert_eq!(moved[[0, 3, 0]], 0);
        assert_eq!(moved[[2, 4, 0]], 0);
    }

    #[test]
    fn rotation_keeps_shape_and_quarter_turn_matches_transpose() {
        let img = image(5, 5, 1).mapv(f32::from);
        assert_eq!(rotate(&img.view(), 0.0), img);
        let quarter = rotate(&img.view(), 90.0);
        assert_eq!(quarter.dim(), (5, 5, 1));
        // Counter-clockwise by 90°: output (y, x) comes from input (x, W-1-y).
        for y in 0..5 {
            for x in 0..5 {
                assert!((quarter[[y, x, 0]] - img[[x, 4 - y, 0]]).abs() < 1e-3, "({y}, {x})");
            }
        }
    }

    #[test]
    fn same_seed_same_augmentation() {
        let aug = Augment { max_shift: 2, flip: true, max_degrees: 15.0 };
        let batch = ArrayD::from_shape_fn(IxDyn(&[4, 8, 8, 3]), |i| (i[1] * 8 + i[2] + i[3]) as u8);
        let run = |seed| {
            let mut b = batch.clone();
            aug.apply(&mut b, &mut Rng::new(seed)).unwrap();
            b
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let mut flat = ArrayD::<f32>::zeros(IxDyn(&[2, 3]));
        assert!(aug.apply(&mut flat, &mut Rng::new(0)).is_err());
    }
}
