//! The table of a release's result, and `release --interactive`'s selection list: Flux v1's
//! `update.Menu`, drawn the same way (`⇒` at the cursor, `◉`/`◯` checked or not) and driven by
//! the same keys (arrows, Tab, `j`/`k`, Space toggles, Enter releases, `q`/Esc/Ctrl-C abort).

use std::io::{Read, Write};

/// One container update a release would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerUpdate {
    /// The container.
    pub(crate) container: String,
    /// The image it runs.
    pub(crate) current: String,
    /// The image it would run.
    pub(crate) target: String,
    /// The tag of `target`, as the table shows it.
    pub(crate) target_tag: String,
}

/// One line of the table: a workload's status and error, or one of its container updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MenuItem {
    /// The workload.
    pub(crate) id: String,
    /// Flux v1's status word: `success`, `failed`, `skipped`, `ignored`.
    pub(crate) status: String,
    /// Why it failed or was left out.
    pub(crate) error: String,
    /// The update of this line, if it is one.
    pub(crate) update: Option<ContainerUpdate>,
    checked: bool,
}

impl MenuItem {
    /// A line of workload `id`.
    pub(crate) fn new(id: String, status: &str, error: String, update: Option<ContainerUpdate>) -> Self {
        MenuItem { id, status: status.to_owned(), error, update, checked: false }
    }

    fn updates(&self) -> String {
        match &self.update {
            Some(u) => format!("{}: {} -> {}", u.container, u.current, u.target_tag),
            None => self.error.clone(),
        }
    }
}

/// The lines of a release's result, and a cursor over its updates.
#[derive(Debug, Clone)]
pub(crate) struct Menu {
    items: Vec<MenuItem>,
    selectable: usize,
    cursor: usize,
}

const HEADING: [&str; 3] = ["WORKLOAD ", "STATUS ", "UPDATES"];
const CURSOR: char = '\u{21d2}';
const CHECKED: char = '\u{25c9}';
const UNCHECKED: char = '\u{25ef}';
const HELP: &str = "Use arrow keys and [Space] to toggle updates; hit [Enter] to release selected.";

impl Menu {
    /// A menu of `items`, every update checked.
    pub(crate) fn new(items: Vec<MenuItem>) -> Self {
        let mut items = items;
        items.iter_mut().for_each(|i| i.checked = i.update.is_some());
        let selectable = items.iter().filter(|i| i.update.is_some()).count();
        Menu { items, selectable, cursor: 0 }
    }

    /// The rows, a workload's id and status only on its first line.
    fn rows(&self, prefix: impl Fn(usize, &MenuItem) -> Option<String>) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut previous: Option<&str> = None;
        let mut index = 0;
        for item in &self.items {
            let inline = previous == Some(item.id.as_str());
            let (id, status) =
                if inline { (String::new(), String::new()) } else { (item.id.clone(), item.status.clone()) };
            let pre = prefix(index, item).unwrap_or_default();
            rows.push(vec![format!("{pre}{id}"), status, item.updates()]);
            previous = Some(&item.id);
            if item.update.is_some() {
                index += 1;
            }
        }
        rows
    }

    /// The table as Flux v1 printed a result: WORKLOAD STATUS UPDATES.
    pub(crate) fn print(&self) -> String {
        let mut rows = vec![HEADING.map(String::from).to_vec()];
        rows.extend(self.rows(|_, _| None));
        crate::table::render(&rows)
    }

    /// The table with the cursor and the check boxes, then the help line.
    fn interactive(&self) -> String {
        let mut rows = vec![vec![format!("    {}", HEADING[0]), HEADING[1].into(), HEADING[2].into()]];
        rows.extend(self.rows(|index, item| {
            let cursor = if item.update.is_some() && index == self.cursor { CURSOR } else { ' ' };
            let check = match &item.update {
                None => ' ',
                Some(_) if item.checked => CHECKED,
                Some(_) => UNCHECKED,
            };
            Some(format!("{cursor} {check} "))
        }));
        format!("{}\n{HELP}\n", crate::table::render(&rows))
    }

    fn selectable_item(&mut self, index: usize) -> Option<&mut MenuItem> {
        self.items.iter_mut().filter(|i| i.update.is_some()).nth(index)
    }

    /// Applies one key; `Some` when the menu is done: the checked updates, or an error when
    /// aborted.
    fn key(&mut self, key: Key) -> Option<Result<Vec<(String, ContainerUpdate)>, String>> {
        match key {
            Key::Abort => return Some(Err("Aborted.".into())),
            Key::Toggle => {
                if let Some(item) = self.selectable_item(self.cursor) {
                    item.checked = !item.checked;
                }
            }
            Key::Down => self.cursor = (self.cursor + 1) % self.selectable,
            Key::Up => self.cursor = (self.cursor + self.selectable - 1) % self.selectable,
            Key::Enter => {
                let chosen = self
                    .items
                    .iter()
                    .filter(|i| i.checked)
                    .filter_map(|i| Some((i.id.clone(), i.update.clone()?)))
                    .collect();
                return Some(Ok(chosen));
            }
            Key::Other => {}
        }
        None
    }

    /// Runs the menu: draws it on `out`, reads keys from `keys` until Enter (the checked
    /// updates) or an abort (an error). `width` is the terminal's, to move back over wrapped
    /// lines when redrawing.
    pub(crate) fn run(
        &mut self,
        keys: &mut impl Read,
        out: &mut impl Write,
        width: usize,
    ) -> Result<Vec<(String, ContainerUpdate)>, String> {
        if self.selectable == 0 {
            return Err("No changes found.".into());
        }
        let io = |e: std::io::Error| format!("cannot use the terminal: {e}");
        let mut drawn = 0;
        write!(out, "\x1b[?25l").map_err(io)?;
        let result = loop {
            if drawn > 0 {
                write!(out, "\x1b[{drawn}A").map_err(io)?;
            }
            let text = self.interactive();
            // Raw mode: a line feed does not return the carriage.
            write!(out, "{}", text.replace('\n', "\r\n")).map_err(io)?;
            out.flush().map_err(io)?;
            drawn = screen_lines(&text, width);
            let mut buffer = [0u8; 3];
            let read = keys.read(&mut buffer).map_err(io)?;
            if read == 0 {
                break Err("Aborted.".to_owned());
            }
            if let Some(done) = self.key(Key::from_bytes(&buffer[..read])) {
                break done;
            }
        };
        write!(out, "\r\n\x1b[?25h").map_err(io)?;
        out.flush().map_err(io)?;
        result
    }
}

/// How many terminal lines `text` takes at `width` columns.
fn screen_lines(text: &str, width: usize) -> usize {
    let width = width.max(1);
    text.lines().map(|l| l.chars().count().saturating_sub(1) / width + 1).sum()
}

/// A key, as Flux v1's `getChar` read it: one byte, or a three-byte `ESC [` sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Up,
    Down,
    Toggle,
    Enter,
    Abort,
    Other,
}

impl Key {
    fn from_bytes(bytes: &[u8]) -> Key {
        match bytes {
            [27, 91, 65] => Key::Up,
            [27, 91, 66] => Key::Down,
            [3 | 27] | [b'q'] => Key::Abort,
            [b' '] => Key::Toggle,
            [13 | 10] => Key::Enter,
            [9] | [b'j'] => Key::Down,
            [b'k'] => Key::Up,
            _ => Key::Other,
        }
    }
}

/// The controlling terminal in raw mode (no echo, keys as typed) until dropped.
pub(crate) struct RawTerminal {
    tty: std::fs::File,
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    /// Opens `/dev/tty` (as Flux v1 did) in raw mode.
    pub(crate) fn open() -> Result<Self, String> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(|e| format!("--interactive needs a terminal: /dev/tty: {e}"))?;
        let saved = rustix::termios::tcgetattr(&tty).map_err(|e| format!("--interactive needs a terminal: {e}"))?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &raw)
            .map_err(|e| format!("cannot put the terminal in raw mode: {e}"))?;
        Ok(RawTerminal { tty, saved })
    }

    /// The terminal's width in columns (Flux v1 assumed 9999 when it could not tell).
    pub(crate) fn width(&self) -> usize {
        match rustix::termios::tcgetwinsize(&self.tty) {
            Ok(size) if size.ws_col > 0 => usize::from(size.ws_col),
            _ => 9999,
        }
    }
}

impl Read for RawTerminal {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tty.read(buf)
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(&self.tty, rustix::termios::OptionalActions::Now, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(container: &str, tag: &str) -> Option<ContainerUpdate> {
        Some(ContainerUpdate {
            container: container.into(),
            current: format!("{container}:1"),
            target: format!("{container}:{tag}"),
            target_tag: tag.into(),
        })
    }

    fn menu() -> Menu {
        Menu::new(vec![
            MenuItem::new("demo:deployment/app".into(), "success", String::new(), update("app", "2")),
            MenuItem::new("demo:deployment/app".into(), "success", String::new(), update("sidecar", "3")),
            MenuItem::new("demo:deployment/web".into(), "skipped", "locked".into(), None),
        ])
    }

    #[test]
    fn the_result_table_is_flux_v1s() {
        assert_eq!(
            menu().print(),
            "WORKLOAD             STATUS   UPDATES\n\
             demo:deployment/app  success  app: app:1 -> 2\n\
             \x20                             sidecar: sidecar:1 -> 3\n\
             demo:deployment/web  skipped  locked\n"
        );
    }

    #[test]
    fn keys_move_toggle_and_release_the_checked_updates() {
        let mut m = menu();
        assert!(m.interactive().starts_with("    WORKLOAD  "));
        assert!(m.interactive().contains("\u{21d2} \u{25c9} demo:deployment/app"), "{}", m.interactive());
        // Down to the sidecar, uncheck it, Enter.
        let mut chosen = None;
        for key in [&[27u8, 91, 66][..], b" ", b"\r"] {
            chosen = m.key(Key::from_bytes(key)).or(chosen);
        }
        let chosen = chosen.expect("done").expect("released");
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].0, "demo:deployment/app");
        assert_eq!(chosen[0].1.container, "app");
        // Through `run`, an abort is an error and the cursor is shown again.
        let mut m = menu();
        let mut out = Vec::new();
        let mut input: &[u8] = b"q";
        assert_eq!(m.run(&mut input, &mut out, 80), Err("Aborted.".into()));
        assert!(String::from_utf8_lossy(&out).ends_with("\x1b[?25h"));
        let mut none = Menu::new(vec![MenuItem::new("a:b/c".into(), "skipped", "locked".into(), None)]);
        assert_eq!(none.run(&mut input, &mut out, 80), Err("No changes found.".into()));
    }

    #[test]
    fn wrapped_lines_are_counted() {
        assert_eq!(screen_lines("abcd\nab\n", 2), 3);
        assert_eq!(screen_lines("abcd\n\n", 80), 2);
    }
}
