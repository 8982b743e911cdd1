//! Progress of the pipeline's steps on stderr: one spinner line per step (indicatif) when stderr is
//! a terminal, else one plain log line per state change (`[  12.3s] rootfs: building`).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The display of one run.
#[derive(Clone)]
pub struct Progress {
    mp: Option<MultiProgress>,
    start: Instant,
    quiet: bool,
}

/// One step's line.
pub struct Step {
    name: String,
    bar: Option<ProgressBar>,
    progress: Progress,
    start: Instant,
    last: Arc<Mutex<String>>,
}

impl Progress {
    /// Spinners when stderr is a terminal (and not quiet), plain lines otherwise.
    pub fn new(quiet: bool) -> Progress {
        let mp = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        crate::logging::set_progress(mp.clone());
        Progress {
            mp,
            start: Instant::now(),
            quiet,
        }
    }

    /// Plain lines, whatever stderr is (tests).
    pub fn plain(quiet: bool) -> Progress {
        Progress {
            mp: None,
            start: Instant::now(),
            quiet,
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let t = self.start.elapsed().as_secs_f64();
        eprintln!("[{t:7.1}s] {text}");
    }

    /// Start a step.
    pub fn step(&self, name: &str, what: &str) -> Step {
        let bar = self.mp.as_ref().map(|mp| {
            let b = mp.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner:.cyan} {prefix:<10} {elapsed:>4} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(name.to_string());
            b.set_message(what.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        if bar.is_none() {
            self.line(&format!("{name}: {what}"));
        }
        Step {
            name: name.to_string(),
            bar,
            progress: self.clone(),
            start: Instant::now(),
            last: Arc::new(Mutex::new(what.to_string())),
        }
    }

    /// Stop drawing (log lines go straight to stderr again).
    pub fn finish(&self) {
        crate::logging::set_progress(None);
        if let Some(mp) = &self.mp {
            let _ = mp.clear();
        }
    }
}

impl Step {
    /// Say what the step is doing now.
    pub fn set(&self, what: &str) {
        if let Ok(mut l) = self.last.lock() {
            if *l == what {
                return;
            }
            *l = what.to_string();
        }
        match &self.bar {
            Some(b) => b.set_message(what.to_string()),
            None => self.progress.line(&format!("{}: {what}", self.name)),
        }
    }

    /// End the step with a summary.
    pub fn done(self, summary: &str) -> Duration {
        let d = self.start.elapsed();
        let text = format!("{summary} ({:.1} s)", d.as_secs_f64());
        match &self.bar {
            Some(b) => {
                b.set_style(
                    ProgressStyle::with_template("  {prefix:<10} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.finish_with_message(text);
            }
            None => self.progress.line(&format!("{}: {text}", self.name)),
        }
        d
    }

    /// End the step as failed.
    pub fn fail(self, why: &str) {
        let short = why.lines().next().unwrap_or(why);
        match &self.bar {
            Some(b) => {
                b.set_style(
                    ProgressStyle::with_template("✗ {prefix:<10} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.finish_with_message(format!("failed: {short}"));
            }
            None => self
                .progress
                .line(&format!("{}: failed: {short}", self.name)),
        }
    }
}
