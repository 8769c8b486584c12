//! Training progress: an epoch header, a live bar on a terminal, and a Keras-style epoch
//! line, `1500/1500 - 2s - 1ms/step - loss: 0.2563 - accuracy: 0.9254 - val_loss: 0.1339`.
//!
//! The text is built by pure functions (tested here); [`Progress`] only decides where it
//! goes. On a terminal an indicatif bar shows step/steps, loss and metrics during the
//! epoch and is cleared before the epoch line is written; elsewhere (logs, pipes) only the
//! header and the epoch line are written. Numbers follow Keras: four decimals, or
//! scientific notation for magnitudes below 1e-3.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A metric value as Keras prints it.
pub fn format_value(v: f64) -> String {
    if v == 0.0 || v.abs() >= 1e-3 || !v.is_finite() { format!("{v:.4}") } else { format!("{v:.4e}") }
}

/// An epoch's wall time: whole seconds from one second up, else milliseconds.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 { format!("{s:.0}s") } else { format!("{:.0}ms", s * 1e3) }
}

/// Time per step in the largest unit that keeps it at least 1 (s, ms, us).
pub fn format_per_step(elapsed: Duration, steps: usize) -> String {
    let per = elapsed.as_secs_f64() / steps.max(1) as f64;
    if per >= 1.0 {
        format!("{per:.0}s/step")
    } else if per >= 1e-3 {
        format!("{:.0}ms/step", per * 1e3)
    } else {
        format!("{:.0}us/step", per * 1e6)
    }
}

/// ` - loss: 0.2563 - accuracy: 0.9254`, each name behind `prefix` (`val_`).
pub fn format_metrics(prefix: &str, loss: f64, metrics: &[(String, f64)]) -> String {
    let mut out = format!(" - {prefix}loss: {}", format_value(loss));
    for (name, v) in metrics {
        out.push_str(&format!(" - {prefix}{name}: {}", format_value(*v)));
    }
    out
}

/// `Epoch 1/5`.
pub fn epoch_header(epoch: usize, epochs: usize) -> String {
    format!("Epoch {epoch}/{epochs}")
}

/// What an epoch line reports.
#[derive(Clone, Debug)]
pub struct EpochSummary<'a> {
    pub steps: usize,
    pub total_steps: usize,
    pub elapsed: Duration,
    pub loss: f64,
    pub metrics: &'a [(String, f64)],
    /// Validation loss and metrics, when there is a validation set.
    pub val: Option<(f64, &'a [(String, f64)])>,
}

/// The line written when an epoch ends.
pub fn epoch_line(s: &EpochSummary<'_>) -> String {
    let mut line = format!(
        "{}/{} - {} - {}{}",
        s.steps,
        s.total_steps,
        format_duration(s.elapsed),
        format_per_step(s.elapsed, s.steps),
        format_metrics("", s.loss, s.metrics)
    );
    if let Some((loss, metrics)) = s.val {
        line.push_str(&format_metrics("val_", loss, metrics));
    }
    line
}

/// Writes progress for a training run to `out`, with a live bar when `interactive`.
pub struct Progress<W: Write> {
    out: W,
    interactive: bool,
    epochs: usize,
    steps_per_epoch: usize,
    bar: Option<ProgressBar>,
    started: Instant,
    steps_done: usize,
    /// When the bar's message was last formatted.
    message_at: Option<Instant>,
}

/// How often the bar's loss and metrics are refreshed.
const MESSAGE_EVERY: Duration = Duration::from_millis(100);

impl Progress<io::Stdout> {
    /// Progress on standard output, with a bar when it is a terminal.
    pub fn stdout(epochs: usize, steps_per_epoch: usize) -> Progress<io::Stdout> {
        let interactive = io::stdout().is_terminal();
        Progress::new(io::stdout(), interactive, epochs, steps_per_epoch)
    }
}

impl<W: Write> Progress<W> {
    pub fn new(out: W, interactive: bool, epochs: usize, steps_per_epoch: usize) -> Progress<W> {
        Progress {
            out,
            interactive,
            epochs,
            steps_per_epoch,
            bar: None,
            started: Instant::now(),
            steps_done: 0,
            message_at: None,
        }
    }

    /// Writes `Epoch i/n` and starts the clock (and the bar) for epoch `epoch` (1-based).
    pub fn begin_epoch(&mut self, epoch: usize) -> io::Result<()> {
        writeln!(self.out, "{}", epoch_header(epoch, self.epochs))?;
        self.out.flush()?;
        self.started = Instant::now();
        self.steps_done = 0;
        self.message_at = None;
        if self.interactive {
            let bar = ProgressBar::with_draw_target(
                Some(self.steps_per_epoch as u64),
                ProgressDrawTarget::stdout(),
            );
            // The template is a constant, so this only falls back if indicatif changes.
            let style = ProgressStyle::with_template("{pos}/{len} [{bar:30}] {elapsed} {msg}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            self.bar = Some(bar);
        }
        Ok(())
    }

    /// Records that `step` steps (1-based count) of this epoch are done, with the running
    /// loss and `metrics`. The metrics are asked for, and the bar's message formatted, only
    /// on a terminal and at most ten times a second: a step without a bar to refresh
    /// allocates nothing here.
    pub fn step(&mut self, step: usize, loss: f64, metrics: impl FnOnce() -> Vec<(String, f64)>) {
        self.steps_done = step;
        let Some(bar) = &self.bar else { return };
        bar.set_position(step as u64);
        let now = Instant::now();
        if self.message_at.is_none_or(|at| now.duration_since(at) >= MESSAGE_EVERY) {
            self.message_at = Some(now);
            bar.set_message(format_metrics("", loss, &metrics()));
        }
    }

    /// Clears the bar and writes the epoch line.
    pub fn end_epoch(
        &mut self,
        loss: f64,
        metrics: &[(String, f64)],
        val: Option<(f64, &[(String, f64)])>,
    ) -> io::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let steps = if self.steps_done == 0 { self.steps_per_epoch } else { self.steps_done };
        let summary = EpochSummary {
            steps,
            total_steps: self.steps_per_epoch,
            elapsed: self.started.elapsed(),
            loss,
            metrics,
            val,
        };
        writeln!(self.out, "{}", epoch_line(&summary))?;
        self.out.flush()
    }

    /// The writer, to inspect what was written or to reuse it.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(list: &[(&str, f64)]) -> Vec<(String, f64)> {
        list.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    #[test]
    fn values_use_four_decimals_or_scientific() {
        assert_eq!(format_value(0.25634), "0.2563");
        assert_eq!(format_value(12.0), "12.0000");
        assert_eq!(format_value(0.0), "0.0000");
        assert_eq!(format_value(0.000_123_45), "1.2345e-4");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn times_pick_their_unit() {
        assert_eq!(format_duration(Duration::from_millis(2400)), "2s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_per_step(Duration::from_millis(1500), 1500), "1ms/step");
        assert_eq!(format_per_step(Duration::from_millis(30), 1000), "30us/step");
        assert_eq!(format_per_step(Duration::from_secs(4), 2), "2s/step");
    }

    #[test]
    fn epoch_line_matches_keras_layout() {
        let train = m(&[("accuracy", 0.92541)]);
        let val = m(&[("accuracy", 0.95989)]);
        let s = EpochSummary {
            steps: 1500,
            total_steps: 1500,
            elapsed: Duration::from_millis(2100),
            loss: 0.25631,
            metrics: &train,
            val: Some((0.13391, &val)),
        };
        assert_eq!(
            epoch_line(&s),
            "1500/1500 - 2s - 1ms/step - loss: 0.2563 - accuracy: 0.9254 - val_loss: 0.1339 - val_accuracy: 0.9599"
        );
        assert_eq!(epoch_header(1, 5), "Epoch 1/5");
    }

    #[test]
    fn plain_reporter_writes_header_and_epoch_line_only() {
        let mut p = Progress::new(Vec::new(), false, 2, 3);
        p.begin_epoch(1).expect("write");
        let metrics = m(&[("accuracy", 0.25)]);
        for step in 1..=3 {
            p.step(step, 0.5, || panic!("no bar, so the metrics are not asked for"));
        }
        p.end_epoch(0.5, &metrics, None).expect("write");
        let text = String::from_utf8(p.into_inner()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], "Epoch 1/2");
        assert!(lines[1].starts_with("3/3 - "), "{}", lines[1]);
        assert!(lines[1].ends_with("/step - loss: 0.5000 - accuracy: 0.2500"), "{}", lines[1]);
    }
}
