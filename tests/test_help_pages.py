"""The node help pages (web/docs/<node id>.md) as the host serves them and the frontend shows them.

The pack's __init__.py sets WEB_DIRECTORY = "./web"; the host serves that folder at
/extensions/<the pack's folder name>/. The frontend (comfyui_frontend_package 1.32.9) asks for a
custom node's help at /extensions/<name>/docs/<node id>/<locale>.md, then
/extensions/<name>/docs/<node id>.md, <name> being the second dot-separated part of the node's
`python_module` ("custom_nodes.<folder>"), cut at an "@": the same folder name, whatever the folder
is called (but for a "." or "@" in it). Relative image links in a page resolve against
/extensions/<name>/docs/. (pyproject's [tool.comfy] `web` is not used: the host keys it by the
project name, which the frontend never asks for unless the folder has that name.)

Without a browser (the in-process host's registry): every node the pack registers has a page and
no page lacks a node; each page names every input and output of its node's schema, and states
each number input's range and default and each fixed combo's options and default as the schema
has them, so a page cannot drift from the code unnoticed; its pictures exist.
Over HTTP (the session's real server): each page and its pictures are served where the frontend
asks, byte for byte; and with the pack linked under another folder name (a second server started
on a base directory of its own), the pages follow that name.
In the real frontend (headless Chromium, test_browser.py's page set-up): for every node the
documentation panel is opened the two ways a user does it: the "?" button of the node's row in the
Node Library sidebar, and the info button of the selection toolbox after clicking the node on the
canvas. The panel must show our page (a phrase found only there, the "Common mistakes" section,
its picture loaded), not the frontend's fallback built from the schema. Screenshots of two pages
(the panel dragged to SHOT_WIDTH) go to $SCREENSHOT_DIR as help_<node id>.png.
"""
import io
import json
import re
import urllib.error
import urllib.request

import pytest

from harness import PACK_DIR, PACK_LINK_NAME
from test_browser import SHOT_WIDTH, SHOTS, close_dialogs, visible_dialogs
from test_browser import page as browser_page  # noqa: F401 (the fixture: test_browser's page set-up)

DOCS = PACK_DIR / "web" / "docs"
# A phrase of each page that neither the schema's description nor its tooltips hold: seeing it in
# the panel means the frontend shows our page, not its fallback.
UNIQUE = {
    "DualLatentKSampler": "Both streams start from this noise.",
    "DualLatentKSamplerAdvanced": "The two-stage form of KSampler (Safety Dual Latent)",
    "SafetyDualGuider": "so the first stage switches to the safety context too early",
    "SafetyContextEncode": "which survives pack updates",
    "SafetyPromptGate": "It reads the prompt only, not the image.",
    "LatentWeightedMerge": "the mix shows both images as ghosts",
    "SafetyDetectorNudeNet": "NudeNet's weak spots",
    "SafetyDetectorBranchDifference": "A detector without an image model, for when no image detector fits.",
}
SCREENSHOT_NODES = ("SafetyPromptGate", "DualLatentKSampler")
MAX_LINES = 60
# combos whose options the host or the user decide (listed by name, not checked option by option)
OPEN_COMBOS = {"sampler_name", "scheduler", "preset"}
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def flat(text):
    return " ".join(text.split())


def page_text(node_id):
    return (DOCS / f"{node_id}.md").read_text(encoding="utf-8")


def frontend_key(python_module):
    """The extension name the frontend derives from a node's python_module (custom nodes only)."""
    parts = (python_module or "").split(".")
    assert len(parts) >= 2 and parts[0] == "custom_nodes", python_module
    return parts[1].split("@")[0]


def help_url(python_module, node_id):
    return f"/extensions/{frontend_key(python_module)}/docs/{node_id}.md"


# -- without a browser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def our_nodes(host):
    """{node id: its object_info entry}, for every node the host registered from the pack."""
    module = "custom_nodes." + PACK_LINK_NAME
    nodes = {nid: cls.GET_NODE_INFO_V1() for nid, cls in host.nodes.NODE_CLASS_MAPPINGS.items()
             if getattr(cls, "RELATIVE_PYTHON_MODULE", None) == module}
    assert len(nodes) == 8, sorted(nodes)
    return nodes


def inputs_of(info):
    return {**info["input"].get("required", {}), **info["input"].get("optional", {})}


def test_every_node_has_one_short_page(our_nodes):
    assert {p.stem for p in DOCS.glob("*.md")} == set(our_nodes)
    assert set(UNIQUE) == set(our_nodes)
    for node_id, info in our_nodes.items():
        text = page_text(node_id)
        assert text.startswith(f"# {info['display_name']}\n"), node_id
        assert len(text.splitlines()) <= MAX_LINES, f"{node_id}.md is longer than {MAX_LINES} lines"
        for section in ("## Inputs", "## Outputs", "## Common mistakes"):
            assert f"\n{section}\n" in text, f"{node_id}.md lacks {section}"
        assert flat(UNIQUE[node_id]) in flat(text), node_id
        schema_words = flat(" ".join([info["description"]] + [spec[1].get("tooltip", "") for spec in
                                                              inputs_of(info).values()]))
        assert flat(UNIQUE[node_id]) not in schema_words, f"{node_id}: the phrase must be the page's own"


def test_host_serves_the_pages_under_the_frontends_name(host, our_nodes):
    """The folder the host registered for the pack's web files is web/, under the very name the
    frontend derives from the nodes' python_module."""
    for node_id, info in our_nodes.items():
        web_dir = host.nodes.EXTENSION_WEB_DIRS.get(frontend_key(info["python_module"]))
        assert web_dir is not None, (node_id, info["python_module"], host.nodes.EXTENSION_WEB_DIRS)
        assert (PACK_DIR / "web").resolve().samefile(web_dir)


def test_pages_name_every_input_and_output(our_nodes):
    for node_id, info in our_nodes.items():
        text = page_text(node_id)
        missing = [name for name in [*inputs_of(info), *info["output_name"]] if f"`{name}`" not in text]
        assert not missing, f"{node_id}.md does not mention {missing}"


def number(text):
    text = text.strip().replace("\u2212", "-")
    m = re.fullmatch(r"2\^(\d+) *- *1", text)
    return 2 ** int(m.group(1)) - 1 if m else float(text)


def test_pages_state_the_schema_ranges_and_defaults(our_nodes):
    """Each INT/FLOAT input as "`name`: LOW to HIGH (default D)"; each option of a fixed combo in
    backticks, its default as "`option` (default"; each item of a STRING input's default."""
    for node_id, info in our_nodes.items():
        text = flat(page_text(node_id))
        for name, (kind, opts) in inputs_of(info).items():
            where = f"{node_id}.md, {name}"
            if kind in ("INT", "FLOAT"):
                m = re.search(rf"`{name}`(?: \(τ\))?: ([-\d.]+) to ([^(]+?) \(default ([-\d.]+)\)", text)
                assert m, f"{where}: no 'LOW to HIGH (default D)'"
                assert (number(m.group(1)), number(m.group(2)), number(m.group(3))) == \
                    (opts["min"], opts["max"], opts["default"]), where
            elif kind == "COMBO" and name not in OPEN_COMBOS:
                default = opts.get("default", opts["options"][0])  # no default: the first option
                assert f"`{default}` (default" in text, f"{where}: default {default!r} not stated"
                for option in opts["options"]:
                    assert f"`{option}`" in text, f"{where}: option {option!r} not named"
            elif kind == "STRING" and opts.get("default"):
                for item in opts["default"].split(","):
                    assert item.strip() in text, f"{where}: default item {item.strip()!r} not stated"


def test_shipped_presets_are_listed():
    names = {json.loads(p.read_text(encoding="utf-8"))["name"] for p in (PACK_DIR / "safety_contexts").glob("*.json")}
    text = page_text("SafetyContextEncode")
    assert names and all(f"`{n}`" in text for n in names), names


def test_page_pictures_exist_and_are_small():
    from PIL import Image
    for page_file in DOCS.glob("*.md"):
        links = IMAGE_LINK.findall(page_file.read_text(encoding="utf-8"))
        assert links, f"{page_file.name} has no picture"
        for link in links:
            assert not link.startswith(("/", "http")), f"{page_file.name}: {link} (relative links resolve everywhere)"
            img = DOCS / link
            assert img.is_file(), f"{page_file.name}: {link} missing"
            assert img.stat().st_size < 100_000
            with Image.open(img) as im:
                assert im.format == "PNG" and im.width <= 800


# -- over HTTP -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info", timeout=120)


def fetch(server, path):
    try:
        with urllib.request.urlopen(server.url + path, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize("node_id", sorted(UNIQUE))
def test_page_is_served_where_the_frontend_asks(server, object_info, node_id):
    url = help_url(object_info[node_id]["python_module"], node_id)
    status, body = fetch(server, url)
    assert status == 200, (url, status)
    assert body == (DOCS / f"{node_id}.md").read_bytes()
    base = url.rsplit("/", 1)[0]
    for link in IMAGE_LINK.findall(body.decode()):
        status, img = fetch(server, f"{base}/{link}")
        assert status == 200 and img == (DOCS / link).read_bytes(), link


def test_pages_follow_the_folder_name(tmp_path):
    """A pack folder not named like the project (a GitHub zip gives "<repo>-main"): the host then
    serves the pages under that folder name, which is the name the frontend asks under."""
    from harness import HostServer
    folder = "ComfyUI-Safety-Dual-Latent-main"
    (tmp_path / "custom_nodes").mkdir()
    (tmp_path / "custom_nodes" / folder).symlink_to(PACK_DIR, target_is_directory=True)
    srv = HostServer(tmp_path / "output", extra_args=["--base-directory", str(tmp_path)])
    try:
        module = srv.get("/object_info/SafetyPromptGate")["SafetyPromptGate"]["python_module"]
        assert frontend_key(module) == folder
        status, body = fetch(srv, help_url(module, "SafetyPromptGate"))
        assert status == 200 and body == (DOCS / "SafetyPromptGate.md").read_bytes()
    finally:
        srv.stop()


# -- in the real frontend ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def panel(browser_page):  # noqa: F811 (the imported fixture)
    """test_browser's page (ComfyUI loaded, off-site requests refused), recording the help files it
    fetches (url -> statuses)."""
    page = browser_page
    page.help_fetches = {}

    def record(response):
        if "/docs/" in response.url:
            page.help_fetches.setdefault(response.url.split("?")[0], []).append(response.status)

    page.on("response", record)
    return page


def back_from_help(page):
    back = page.locator(".side-bar-panel button:has(.pi-arrow-left)")
    if back.count() and back.first.is_visible():
        back.first.click()
        page.wait_for_timeout(200)


def show_node_library(page):
    """The Node Library sidebar tab (its button, as a user opens it), its tree showing."""
    back_from_help(page)
    search = page.locator(".side-bar-panel .search-box-input")
    if not (search.count() and search.first.is_visible()):
        page.click(".node-library-tab-button")
    search.first.wait_for(state="visible", timeout=10_000)


def help_from_node_library(page, title):
    """The "?" button of the node's row in the Node Library's "safety" category (shown on hover)."""
    show_node_library(page)
    leaf = page.locator(".node-lib-node-container").filter(has=page.get_by_text(title, exact=True))
    if leaf.count() == 0:  # the "safety" category is folded: unfold it
        page.locator(".p-tree-node-content").filter(has=page.get_by_text("safety", exact=True)).first.click()
    leaf.first.wait_for(state="visible", timeout=10_000)
    leaf.first.hover()
    leaf.first.locator(".help-button").click()


def expect_our_page(page, node_id, object_info):
    """The documentation panel shows node_id's page: our phrase, the mistakes section, its
    pictures loaded, fetched from the URL the host serves it at."""
    phrase = flat(UNIQUE[node_id])
    page.wait_for_function("(p) => (document.querySelector('.node-help-content')?.innerText || '')"
                           ".replace(/\\s+/g, ' ').includes(p)", arg=phrase, timeout=15_000)
    page.wait_for_function("() => [...document.querySelectorAll('.node-help-content img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)", timeout=15_000)
    shown = page.evaluate("""() => { const c = document.querySelector('.node-help-content');
        return {text: c.innerText, images: [...c.querySelectorAll('img')].map(i => i.src),
                fallback: !!c.querySelector('.fallback-content')}; }""")
    assert not shown["fallback"]
    assert "Common mistakes" in shown["text"]
    assert shown["images"], f"{node_id}: no picture shown"
    url = page.evaluate("() => location.origin") + help_url(object_info[node_id]["python_module"], node_id)
    statuses = page.help_fetches.get(url, [])
    assert 200 in statuses and set(statuses) <= {200, 304}, (url, page.help_fetches)
    return shown


@pytest.mark.parametrize("node_id", sorted(UNIQUE))
def test_node_library_help_button_shows_our_page(panel, object_info, node_id):
    page = panel
    errors_before = len(page.errors)
    help_from_node_library(page, object_info[node_id]["display_name"])
    expect_our_page(page, node_id, object_info)
    assert visible_dialogs(page) == []
    assert page.errors[errors_before:] == []
    back_from_help(page)


@pytest.mark.parametrize("node_id", sorted(UNIQUE))
def test_selection_toolbox_info_button_shows_our_page(panel, object_info, node_id):
    page = panel
    errors_before = len(page.errors)
    back_from_help(page)
    close_dialogs(page)
    # one node on an empty canvas, in the middle of the view; then a user's click on its title
    x, y = page.evaluate("""(type) => {
        app.graph.clear();
        const n = LiteGraph.createNode(type);
        const r = app.canvas.canvas.getBoundingClientRect();
        const at = app.canvas.ds.convertCanvasToOffset([r.width * 0.55, r.height * 0.45]);
        n.pos = [at[0], at[1]];
        app.graph.add(n);
        app.canvas.deselectAll();
        app.graph.setDirtyCanvas(true, true);
        const p = app.canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0] / 2, n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT / 2]);
        return [r.x + p[0], r.y + p[1]];
    }""", node_id)
    page.wait_for_timeout(300)
    page.mouse.click(x, y)
    page.wait_for_function("(t) => { const s = Object.values(app.canvas.selected_nodes);"
                           " return s.length === 1 && s[0].type === t; }", arg=node_id, timeout=10_000)
    info = page.locator("[data-testid=info-button]")
    info.wait_for(state="visible", timeout=10_000)
    info.click()
    expect_our_page(page, node_id, object_info)
    assert page.errors[errors_before:] == []
    back_from_help(page)
    page.evaluate("() => { app.canvas.deselectAll(); app.graph.clear(); }")


@pytest.mark.parametrize("node_id", SCREENSHOT_NODES)
def test_help_page_screenshot(panel, object_info, node_id):
    """help_<node id>.png: the panel dragged to SHOT_WIDTH wide, the whole page in view."""
    from PIL import Image
    page = panel
    errors_before = len(page.errors)
    help_from_node_library(page, object_info[node_id]["display_name"])
    expect_our_page(page, node_id, object_info)
    viewport = page.viewport_size
    start = sidebar_gutter(page)
    drag(page, start, SHOT_WIDTH + 4)  # the panel's right edge just past the shot
    try:
        right = page.evaluate("() => document.querySelector('.side-bar-panel').getBoundingClientRect().right")
        assert abs(right - SHOT_WIDTH) < 20, f"the panel did not widen: its right edge is at {right}"
        box = page.evaluate("""() => { const c = document.querySelector('.node-help-content');
            const top = c.parentElement.getBoundingClientRect().top;
            return {top, height: c.parentElement.scrollHeight}; }""")
        page.set_viewport_size({"width": viewport["width"], "height": min(int(box["top"] + box["height"]) + 20, 4000)})
        page.wait_for_timeout(500)
        bottom = page.evaluate("() => { const c = document.querySelector('.node-help-content');"
                               " return c.getBoundingClientRect().bottom; }")
        png = page.screenshot(type="png", clip={"x": 0, "y": box["top"], "width": SHOT_WIDTH,
                                                "height": bottom - box["top"]})
    finally:
        page.set_viewport_size(viewport)
        page.wait_for_timeout(300)
        drag(page, sidebar_gutter(page), start[0])
        back_from_help(page)
    assert page.errors[errors_before:] == []
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > SHOT_WIDTH:
        img = img.resize((SHOT_WIDTH, round(img.height * SHOT_WIDTH / img.width)), Image.LANCZOS)
    assert img.height > 600 and len(img.getcolors(1 << 20) or range(1000)) > 50, "the screenshot is blank"
    SHOTS.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=128).save(SHOTS / f"help_{node_id}.png", optimize=True)


def sidebar_gutter(page):
    """(x, y) of a point of the splitter gutter right of the sidebar panel, level with the panel's
    header (lower down, a drag could pick up the page's picture instead)."""
    return page.evaluate("""() => {
        let g = document.querySelector('.side-bar-panel').nextElementSibling;
        while (g && !g.classList.contains('p-splitter-gutter')) g = g.nextElementSibling;
        const r = g.getBoundingClientRect();
        return [r.x + r.width / 2, r.y + 15]; }""")


def drag(page, start, x_to):
    """Drag the sidebar's splitter gutter with the mouse, as a user resizes the panel."""
    x_from, y = start
    page.mouse.move(x_from, y)
    page.wait_for_timeout(150)
    page.mouse.down()
    page.wait_for_timeout(150)
    page.mouse.move((x_from + x_to) / 2, y, steps=8)
    page.mouse.move(x_to, y, steps=8)
    page.mouse.up()
    page.wait_for_timeout(400)
