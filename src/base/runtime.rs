//! Single-threaded tokio runtimes on threads of their own, for work that
//! runs best without the multi-threaded scheduler: the HTTP connections
//! (one runtime per core, as nginx runs one worker per core) and the
//! digest deliveries.
//!
//! On the multi-threaded runtime a task woken by I/O may wake a second
//! worker thread to steal work that is not there, and tasks of one
//! connection hop between threads; measured here, that was about a tenth
//! of herald's CPU on the digest and the 304 paths (see `digest/send.rs`
//! and `http/server.rs`). Tasks spawned on a [`RuntimeThread`] stay on its
//! thread; what they share with the rest of the process (channels, locks,
//! sockets opened elsewhere) works across runtimes as tokio documents.
//!
//! A runtime ends when its [`RuntimeThread`] is dropped: its thread stops
//! driving it, and tasks still on it are dropped there (a runtime cannot
//! be dropped from inside another one, hence the thread owns it).

use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub struct RuntimeThread {
    handle: Handle,
    /// Dropped with the value: the thread's runtime then ends.
    _stop: oneshot::Sender<()>,
}

impl RuntimeThread {
    /// A runtime with I/O and timers, driven by a new thread `name`.
    pub fn start(name: &str) -> std::io::Result<RuntimeThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(RuntimeThread {
            handle,
            _stop: stop,
        })
    }

    /// Where to spawn tasks that should run on this thread.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_the_thread_and_it_ends_with_its_owner() {
        let thread = RuntimeThread::start("herald-test-rt").unwrap();
        let name = thread
            .handle()
            .spawn(async { std::thread::current().name().map(str::to_string) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("herald-test-rt"));
        let handle = thread.handle().clone();
        drop(thread);
        // Once the owner is gone the runtime shuts down, and a task
        // spawned on it after that never runs.
        let mut ended = false;
        for _ in 0..200 {
            if handle.spawn(async {}).await.is_err() {
                ended = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(ended, "the runtime outlived its owner");
    }
}
