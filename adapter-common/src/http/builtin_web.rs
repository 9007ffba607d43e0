//! The browser client (`/live-sync.js`, its types `/live-sync.d.ts`) and the
//! todo demo (`/`), compiled into the server so that the stock binary serves
//! them with no files beside it. The sources live in the repository's `web/`
//! folder; a static directory, when configured, takes precedence.

/// `(request path, content type, content)` of every bundled file.
const FILES: &[(&str, &str, &[u8])] = &[
    ("/", HTML, include_bytes!("../../../web/index.html")),
    (
        "/index.html",
        HTML,
        include_bytes!("../../../web/index.html"),
    ),
    (
        "/live-sync.js",
        JS,
        include_bytes!("../../../web/live-sync.js"),
    ),
    (
        "/live-sync.d.ts",
        TS,
        include_bytes!("../../../web/live-sync.d.ts"),
    ),
    ("/todo.js", JS, include_bytes!("../../../web/todo.js")),
    ("/todo.css", CSS, include_bytes!("../../../web/todo.css")),
];

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const TS: &str = "application/typescript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The bundled file a request path names: its content type and bytes.
pub fn lookup(path: &str) -> Option<(&'static str, &'static [u8])> {
    FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, kind, body)| (*kind, *body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_and_the_client_are_bundled() {
        let (kind, page) = lookup("/").expect("index");
        assert_eq!(kind, HTML);
        let page = std::str::from_utf8(page).expect("utf-8");
        assert!(page.contains("todo.js"), "the demo page loads its script");
        let (kind, js) = lookup("/live-sync.js").expect("client");
        assert_eq!(kind, JS, "module scripts need a JavaScript content type");
        assert!(std::str::from_utf8(js).expect("utf-8").contains("export"));
        assert!(lookup("/../Cargo.toml").is_none());
        assert!(lookup("/missing.js").is_none());
    }
}
