//! The progress bar of long compiles (a 100M-parameter model spends seconds loading
//! and packing weights): stages on stderr, drawn only when stderr is a terminal
//! (indicatif's stderr target hides itself otherwise), so logs and pipes get nothing,
//! and cleared when done, so the report below it reads as before.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Stages(ProgressBar);

impl Stages {
    pub fn new(stages: u64) -> Stages {
        let bar = ProgressBar::with_draw_target(Some(stages), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed}] [{bar:20}] {pos}/{len} {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Stages(bar)
    }

    /// Starts the next stage (the previous ones count as done).
    pub fn stage(&self, done: u64, what: &'static str) {
        self.0.set_position(done);
        self.0.set_message(what);
    }
}

impl Drop for Stages {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
