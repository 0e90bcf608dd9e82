// Render the \( ... \) and \[ ... \] spans that pymdownx.arithmatex (generic mode) leaves in the page,
// with the KaTeX copy bundled in docs/assets/katex (the site works offline). Material's document$
// observable re-runs this on instant navigation.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "\\[", right: "\\]", display: true },
      { left: "\\(", right: "\\)", display: false },
    ],
    throwOnError: false,
  });
});
