//! asyncio: awaitables are asyncio futures settled from libdat's threads (see `libdat/_aio.py`).
//!
//! A native object that can be awaited has a method `register(done)` that arranges for
//! `done(result, error)` to be called once, on the callback thread; `_aio.bridge` turns that into
//! a future of the running event loop (`loop.call_soon_threadsafe`).

use pyo3::BoundObject;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

fn helpers(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static AIO: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    AIO.get_or_try_init(py, || Ok::<_, PyErr>(py.import("libdat._aio")?.unbind()))
        .map(|m| m.bind(py))
}

/// An asyncio future of the running loop, settled by `register(done)`.
pub fn bridge<'py>(register: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    helpers(register.py())?.call_method1("bridge", (register,))
}

/// The awaitable of `__anext__` for an iterator with `_take`, `_ended` and `_poll`.
pub fn anext<'py>(it: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    helpers(it.py())?.call_method1("anext", (it,))
}

/// `__await__` of an object whose `register` settles a future.
pub fn await_<'py>(register: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    bridge(register)?.call_method0("__await__")
}

/// Spawns `work` on the runtime's blocking pool and settles `done(result, error)` with its
/// outcome on the callback thread.
pub fn spawn_blocking<T, F>(done: Py<PyAny>, work: F) -> crate::errors::Result<()>
where
    F: FnOnce() -> crate::errors::Result<T> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    crate::runtime::runtime()?.spawn_blocking(move || {
        let out = work();
        crate::runtime::dispatch(move |py| settle(py, &done, out));
    });
    Ok(())
}

/// Calls `done(result, None)` or `done(None, error)`.
pub fn settle<'py, T: IntoPyObject<'py>>(
    py: Python<'py>,
    done: &Py<PyAny>,
    out: crate::errors::Result<T>,
) {
    let args = match out {
        Ok(v) => match v.into_pyobject(py) {
            Ok(v) => (v.into_any().unbind(), py.None()),
            Err(e) => (py.None(), Into::<PyErr>::into(e).into_value(py).into_any()),
        },
        Err(e) => (py.None(), PyErr::from(e).into_value(py).into_any()),
    };
    crate::runtime::call_reporting(py, done, args);
}
