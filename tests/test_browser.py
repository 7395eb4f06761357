"""The example workflows in the host's real frontend, in headless Chromium.

One real server (the session's `server` fixture) and one browser page for the whole module.
For each workflow: the page loads it with the frontend's own `app.loadGraphData`; no
missing-node warning or other dialog appears; our nodes are registered, drawn on the canvas,
and carry the widgets of their schema; the frontend reads back the same widget values and
links as the file holds and turns the graph into the same API prompt as our converter; then
the page queues it (as a user who changed the seed would) and the server saves an image for
that very workflow. flux_safe_txt2img and wan_safe_txt2video name T5-XXL / umT5-XXL files the
tiny set-up cannot have: steps 1-5 check the shipped file as is; to run them, the page's own
API prompt gets its text-encoder loader swapped for the tiny CLIP-L stand-in
(workflow_files.STAND_IN) and is POSTed to the same server under the page's client id.
A screenshot of each, after the run, goes to $SCREENSHOT_DIR (set it to
docs/screenshots to refresh the README pictures; by default a folder under .build, so a test
run leaves the tracked tree clean).

Needs Debian's chromium and the python `playwright` client: scripts/setup_browser.sh.
"""
import io
import os
import tempfile
import time
from pathlib import Path

import pytest

from workflow_files import (OUR_NODES, PACK_DIR, SUBSTITUTED, convert, load_workflow, widget_names,
                            with_stand_in, workflow_names)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("SCREENSHOT_DIR", PACK_DIR / ".build" / "screenshots"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1800, "height": 1000}
SHOT_WIDTH = 1100  # the PNGs in docs/ are scaled to this width

try:
    from playwright.sync_api import sync_playwright
except ImportError as e:  # fail loudly: a skipped browser test would hide a broken set-up
    raise ImportError("the python 'playwright' client is missing: run scripts/setup_browser.sh "
                      "(make test does)") from e


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info", timeout=120)


@pytest.fixture(scope="module")
def page(server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup_browser.sh (make test does)")
    # What the frontend itself records after a first visit: no templates dialog for a "new user".
    status, _ = server.request("POST", "/settings/Comfy.TutorialCompleted", True)
    assert status == 200
    profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
    pw = sync_playwright().start()
    ctx = pw.chromium.launch_persistent_context(profile.name, executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                viewport=VIEWPORT)
    pg = ctx.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    offsite = []

    def local_only(route):
        # No network at run time: whatever the frontend asks of other hosts (it looks up
        # api.comfy.org for node metadata) is refused, and everything must still work.
        if route.request.url.startswith((server.url, "data:", "blob:")):
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()

    ctx.route("**/*", local_only)
    pg.offsite = offsite
    pg.goto(server.url, wait_until="domcontentloaded", timeout=120_000)
    pg.wait_for_function("() => window.app && app.graph && app.canvas && window.LiteGraph && "
                         "Object.keys(LiteGraph.registered_node_types).length > 100", timeout=120_000)
    pg.wait_for_timeout(1500)  # let the startup dialogs and toasts settle
    close_dialogs(pg)
    try:
        yield pg
    finally:
        ctx.close()
        pw.stop()
        profile.cleanup()


def close_dialogs(pg):
    for _ in range(3):
        if not visible_dialogs(pg):
            return
        pg.keyboard.press("Escape")
        pg.wait_for_timeout(300)


def visible_dialogs(pg):
    """Text of every dialog shown on the page (PrimeVue dialogs, the frontend's only modal kind)."""
    return pg.evaluate("""() => [...document.querySelectorAll('.p-dialog, [role=dialog]')]
        .filter(d => d.offsetParent !== null || d.getClientRects().length)
        .map(d => d.innerText.slice(0, 400))""")


def test_registry_page_loads_our_nodes(page):
    types = page.evaluate("() => Object.keys(LiteGraph.registered_node_types)")
    for t in ("SafetyContextEncode", "DualLatentKSampler", "SafetyDualGuider", "LatentWeightedMerge"):
        assert t in types
    cats = page.evaluate("() => ['SafetyContextEncode','DualLatentKSampler','SafetyDualGuider',"
                         "'LatentWeightedMerge'].map(t => LiteGraph.registered_node_types[t].category)")
    assert cats == ["safety"] * 4


@pytest.mark.parametrize("name", workflow_names())
def test_workflow_in_browser(page, server, object_info, name):
    wf = load_workflow(name)
    page.evaluate("""() => {
        window.__missing = [];
        if (!app.__spied) {
            const orig = app.showMissingNodesError.bind(app);
            app.showMissingNodesError = (types) => { window.__missing.push(...types); return orig(types); };
            app.__spied = true;
        }
    }""")
    errors_before = len(page.errors)
    page.evaluate("async ([wf, name]) => { await app.loadGraphData(wf, true, true, name); }", [wf, name])
    page.wait_for_timeout(500)

    # 1. loads clean: no missing node, no dialog, no page error, every node there
    assert page.evaluate("() => window.__missing") == []
    assert visible_dialogs(page) == []
    assert page.errors[errors_before:] == []
    graph = page.evaluate("""() => app.graph.nodes.map(n => ({id: n.id, type: n.type,
        widgets: (n.widgets || []).map(w => w.name), registered: !!LiteGraph.registered_node_types[n.type],
        size: [n.size[0], n.size[1]]}))""")
    assert sorted(n["id"] for n in graph) == sorted(n["id"] for n in wf["nodes"])
    assert all(n["registered"] for n in graph)

    # 2. our nodes carry the widgets of their schema (seed with its control widget)
    ours = [n for n in graph if n["type"] in OUR_NODES]
    assert ours, f"{name} uses none of the pack's nodes"
    for n in ours:
        assert n["widgets"] == widget_names(object_info, n["type"]), n
        assert n["size"][0] > 100 and n["size"][1] > 50

    # 3. the frontend reads the file as written: widget values and links round-trip
    saved = page.evaluate("() => app.graph.serialize()")
    by_id = {n["id"]: n for n in saved["nodes"]}
    for n in wf["nodes"]:
        assert by_id[n["id"]]["widgets_values"] == n["widgets_values"], (n["id"], n["type"])
        assert by_id[n["id"]]["type"] == n["type"]
    assert sorted(map(tuple, saved["links"])) == sorted(map(tuple, wf["links"]))

    # 4. the frontend's own UI -> API conversion equals ours
    front = page.evaluate("async () => (await app.graphToPrompt()).output")
    assert front == convert(wf, object_info)

    # 5. drawn on the canvas once the view fits the graph
    page.evaluate("() => { app.canvas.ds.scale = 1; app.graph.setDirtyCanvas(true, true); }")
    fit_view(page)
    visible = page.evaluate("() => app.canvas.visible_nodes.map(n => n.type)")
    assert OUR_NODES & set(visible) == {n["type"] for n in ours}

    # 6. queue from the page, as a user who changed the seed: a real run, not a cache hit
    page.evaluate("""() => { for (const n of app.graph.nodes) for (const w of (n.widgets || []))
        if (w.name === 'seed' || w.name === 'noise_seed') w.value = w.value + 1000; }""")
    started = time.time()
    if name in SUBSTITUTED:
        queue_with_stand_in(page, server, name)
    else:
        page.evaluate("async () => { await app.queuePrompt(0, 1); }")
        page.wait_for_timeout(300)
        assert page.evaluate("() => app.lastNodeErrors") in (None, {}), "the server rejected the page's prompt"
    assert visible_dialogs(page) == []
    entry = wait_for_workflow(server, wf["id"], started)
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = [img for out in entry["outputs"].values() for img in out.get("images", [])]
    assert images, f"{name}: no image saved"
    for img in images:
        path = server.output_dir / img.get("subfolder", "") / img["filename"]
        assert path.is_file() and path.stat().st_size > 100
    seeds = [node["inputs"].get("seed", node["inputs"].get("noise_seed")) for node in entry["prompt"][2].values()
             if "seed" in node["inputs"] or "noise_seed" in node["inputs"]]
    assert seeds and all(s >= 1000 for s in seeds if isinstance(s, int))
    # the previews arrive over the websocket; then the canvas shows them (a video: its node's outputs)
    if any(n["type"] == "SaveImage" for n in wf["nodes"]):
        page.wait_for_function("() => app.graph.nodes.some(x => x.type === 'SaveImage' && x.imgs && x.imgs.length)",
                               timeout=30_000)
    else:
        [save] = [n["id"] for n in wf["nodes"] if n["type"] == "SaveVideo"]
        page.wait_for_function("(id) => (app.nodeOutputs?.[String(id)]?.images ?? []).length > 0", arg=save,
                               timeout=30_000)
    page.wait_for_timeout(500)
    screenshot(page, SHOTS / f"{name}.png")
    assert page.errors[errors_before:] == []


def queue_with_stand_in(page, server, name):
    """What the page's Queue button sends (graphToPrompt: the API prompt and the workflow), with the
    text-encoder loader swapped for the stand-in, POSTed to the real server's /prompt under the
    page's client id (so the page receives the run's messages and previews)."""
    sent = page.evaluate("""async () => { const p = await app.graphToPrompt();
        return {output: p.output, workflow: p.workflow,
                client_id: window.comfyAPI?.api?.api?.clientId ?? sessionStorage.getItem('clientId')}; }""")
    assert sent["client_id"], "the page has no client id"
    body = {"prompt": with_stand_in(name, sent["output"]), "client_id": sent["client_id"],
            "extra_data": {"extra_pnginfo": {"workflow": sent["workflow"]}}}
    status, reply = server.request("POST", "/prompt", body)
    assert status == 200 and not reply.get("node_errors"), f"the server rejected the prompt: {reply}"


def fit_view(page):
    """Fit the whole graph in the viewport (the frontend's "fit view" command)."""
    page.evaluate("""async () => {
        try { await app.extensionManager.command.execute('Comfy.Canvas.FitView'); }
        catch (e) { app.canvas.ds.fitToBounds ? app.canvas.ds.fitToBounds(app.graph.boundingRect ?? [0,0,2000,1000])
                                              : null; }
        app.graph.setDirtyCanvas(true, true);
    }""")
    page.wait_for_timeout(400)


def wait_for_workflow(server, workflow_id, since, timeout=300):
    """The /history entry of the prompt the page queued for this workflow (matched by its id)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for pid, entry in server.get("/history").items():
            extra = entry["prompt"][3] if len(entry["prompt"]) > 3 else {}
            wf = (extra.get("extra_pnginfo") or {}).get("workflow") or {}
            done = entry.get("status", {}).get("completed") is not None
            if wf.get("id") == workflow_id and done and entry["status"].get("status_str") in ("success", "error"):
                seeds = [n["inputs"].get("seed", n["inputs"].get("noise_seed"))
                         for n in entry["prompt"][2].values()]
                if any(isinstance(s, int) and s >= 1000 for s in seeds):
                    return entry
        time.sleep(0.3)
    raise TimeoutError(f"no finished prompt for workflow {workflow_id} in {timeout} s:\n{server.log()[-3000:]}")


def screenshot(page, path):
    """A small PNG of the graph: zoomed to fill the view, text drawn at any zoom, cropped to the graph."""
    from PIL import Image
    clip = page.evaluate("""() => {
        app.canvas.min_font_size_for_lod = 0;
        for (const el of document.querySelectorAll('.minimap-main-container')) el.style.display = 'none';
        let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
        for (const n of app.graph.nodes) {
            x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT);
            x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
        }
        const area = [70, 130, window.innerWidth - 30, window.innerHeight - 30];  // clear of menus
        const scale = Math.min((area[2] - area[0]) / (x1 - x0), (area[3] - area[1]) / (y1 - y0));
        app.canvas.ds.scale = scale;
        app.canvas.ds.offset = [area[0] / scale - x0, area[1] / scale - y0];
        app.graph.setDirtyCanvas(true, true);
        return {x: area[0] - 10, y: area[1] - 10, width: (x1 - x0) * scale + 20, height: (y1 - y0) * scale + 20};
    }""")
    page.wait_for_timeout(600)
    png = page.screenshot(type="png", clip=clip)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > SHOT_WIDTH:
        img = img.resize((SHOT_WIDTH, round(img.height * SHOT_WIDTH / img.width)), Image.LANCZOS)
    assert len(img.getcolors(1 << 20) or range(1000)) > 50, "the screenshot is blank"
    path.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=128).save(path, optimize=True)
