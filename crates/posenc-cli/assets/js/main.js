// posenc explorer: starts every panel, the course (guided path, predictions) and URL state.

import { whyPanel, sinusoidalPanel, learnedPanel, relativePanel, ropePanel, alibiPanel, longctxPanel } from "./panels.js";
import { walkPanel, nopePanel, comparePanel } from "./canonical.js";
import { modelPanel } from "./model.js";
import { learnPanel } from "./learn.js";
import { applyUrlState, watchUrlState, guidedPath, attachPredictions, shareLink } from "./course.js";

const PANELS = {
  why: whyPanel, walk: walkPanel, sinusoidal: sinusoidalPanel, learned: learnedPanel, relative: relativePanel,
  rope: ropePanel, alibi: alibiPanel, nope: nopePanel, compare: comparePanel, longctx: longctxPanel,
  model: modelPanel, learn: learnPanel,
};

// Settings from a shared link apply before the panels first ask the server.
applyUrlState();
guidedPath();
for (const panel of document.querySelectorAll("[data-panel]")) {
  const init = PANELS[panel.dataset.panel];
  if (init) init(panel);
}
attachPredictions(document).catch(e => console.warn(`predictions: ${e.message}`));
watchUrlState();
shareLink();
if (location.hash) {
  // The panels' heights settle once they draw: scroll to the linked one again.
  setTimeout(() => { const t = document.getElementById(location.hash.slice(1)); if (t) t.scrollIntoView(); }, 400);
}
