use std::io::Result as IoResult;
use std::io::{BufRead, BufReader, Read, Write};

use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use std::mem;

pub struct SequentialReaderBuilder<R>
where
    R: Read + Send,
{
    inner: SequentialReaderBuilderInner<R>,
}

enum SequentialReaderBuilderInner<R>
where
    R: Read + Send,
{
    First(R),
    NotFirst(Receiver<R>),
}

pub struct SequentialReader<R>
where
    R: Read + Send,
{
    inner: SequentialReaderInner<R>,
    next: Sender<R>,
}

enum SequentialReaderInner<R>
where
    R: Read + Send,
{
    MyTurn(R),
    Waiting(Receiver<R>),
    Empty,
}

pub struct SequentialWriterBuilder<W>
where
    W: Write + Send,
{
    writer: Arc<Mutex<W>>,
    next_trigger: Option<Receiver<()>>,
}

pub struct SequentialWriter<W>
where
    W: Write + Send,
{
    trigger: Option<Receiver<()>>,
    writer: Arc<Mutex<W>>,
    on_finish: Sender<()>,
}

impl<R: Read + Send> SequentialReaderBuilder<R> {
    pub fn new(reader: R) -> SequentialReaderBuilder<R> {
        SequentialReaderBuilder {
            inner: SequentialReaderBuilderInner::First(reader),
        }
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    pub fn new(writer: W) -> SequentialWriterBuilder<W> {
        SequentialWriterBuilder {
            writer: Arc::new(Mutex::new(writer)),
            next_trigger: None,
        }
    }
}

impl<R: Read + Send> Iterator for SequentialReaderBuilder<R> {
    type Item = SequentialReader<R>;

    fn next(&mut self) -> Option<SequentialReader<R>> {
        let (tx, rx) = channel();

        let inner = mem::replace(&mut self.inner, SequentialReaderBuilderInner::NotFirst(rx));

        match inner {
            SequentialReaderBuilderInner::First(reader) => Some(SequentialReader {
                inner: SequentialReaderInner::MyTurn(reader),
                next: tx,
            }),

            SequentialReaderBuilderInner::NotFirst(previous) => Some(SequentialReader {
                inner: SequentialReaderInner::Waiting(previous),
                next: tx,
            }),
        }
    }
}

impl<W: Write + Send> Iterator for SequentialWriterBuilder<W> {
    type Item = SequentialWriter<W>;
    fn next(&mut self) -> Option<SequentialWriter<W>> {
        let (tx, rx) = channel();
        let mut next_next_trigger = Some(rx);
        ::std::mem::swap(&mut next_next_trigger, &mut self.next_trigger);

        Some(SequentialWriter {
            trigger: next_next_trigger,
            writer: self.writer.clone(),
            on_finish: tx,
        })
    }
}

impl<R: Read + Send> Read for SequentialReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let mut reader = match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => return reader.read(buf),
            SequentialReaderInner::Waiting(ref mut recv) => recv.recv().unwrap(),
            SequentialReaderInner::Empty => unreachable!(),
        };

        let result = reader.read(buf);
        self.inner = SequentialReaderInner::MyTurn(reader);
        result
    }
}

/// wxauth patch: what the connection's thread needs to know, before it
/// waits for a next request, about the buffered reader it reads requests from.
impl<R: Read + Send> SequentialReader<std::io::BufReader<R>> {
    /// The number of bytes already buffered, or None while the previous
    /// request still holds the reader (its turn has not come).
    pub fn buffered(&mut self) -> Option<usize> {
        if let SequentialReaderInner::Waiting(ref recv) = self.inner {
            match recv.try_recv() {
                Ok(reader) => self.inner = SequentialReaderInner::MyTurn(reader),
                Err(_) => return None,
            }
        }
        match self.inner {
            SequentialReaderInner::MyTurn(ref reader) => Some(reader.buffer().len()),
            _ => None,
        }
    }

    /// The reader itself, if its turn has come.
    pub fn get_mut(&mut self) -> Option<&mut R> {
        self.buffered()?;
        match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => Some(reader.get_mut()),
            _ => None,
        }
    }

    /// Waits for its turn, then for data: Ok(false) at the end of the stream.
    pub fn wait_for_data(&mut self) -> IoResult<bool> {
        Ok(!self.fill_buf()?.is_empty())
    }
}

/// wxauth patch: lines are read straight from the buffer (`read_until`),
/// not a byte at a time through `Read`.
impl<R: Read + Send> BufRead for SequentialReader<BufReader<R>> {
    fn fill_buf(&mut self) -> IoResult<&[u8]> {
        if let SequentialReaderInner::Waiting(ref recv) = self.inner {
            self.inner = SequentialReaderInner::MyTurn(recv.recv().unwrap());
        }
        match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => reader.fill_buf(),
            _ => unreachable!(),
        }
    }

    fn consume(&mut self, amount: usize) {
        if let SequentialReaderInner::MyTurn(ref mut reader) = self.inner {
            reader.consume(amount);
        }
    }
}

impl<W: Write + Send> Write for SequentialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        if let Some(v) = self.trigger.as_mut() {
            v.recv().unwrap()
        }
        self.trigger = None;

        self.writer.lock().unwrap().write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        if let Some(v) = self.trigger.as_mut() {
            v.recv().unwrap()
        }
        self.trigger = None;

        self.writer.lock().unwrap().flush()
    }
}

impl<R> Drop for SequentialReader<R>
where
    R: Read + Send,
{
    fn drop(&mut self) {
        let inner = mem::replace(&mut self.inner, SequentialReaderInner::Empty);

        match inner {
            SequentialReaderInner::MyTurn(reader) => {
                self.next.send(reader).ok();
            }
            SequentialReaderInner::Waiting(recv) => {
                let reader = recv.recv().unwrap();
                self.next.send(reader).ok();
            }
            SequentialReaderInner::Empty => (),
        }
    }
}

impl<W> Drop for SequentialWriter<W>
where
    W: Write + Send,
{
    fn drop(&mut self) {
        self.on_finish.send(()).ok();
    }
}
