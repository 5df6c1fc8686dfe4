# The same indices as platform_estimates.py, computed independently with R's survey package.
#
#   Rscript check.R DATA_DIR OUT.csv
#
# Reads DATA_DIR/ballots.csv and DATA_DIR/instrument.csv (generate.py). Each index is a linear
# combination of ratios of weighted totals, theta = sum_k c_k Y_k / X_k, where per ballot y is the
# satisfied answers (4 or 5) and x the valid answers over the term's items (a missing answer is 0
# in both). Estimates and standard errors come from svyratio(covmat = TRUE) and svycontrast on it;
# every figure is also computed by the delta method on svytotal (svycontrast with an expression),
# and the script stops if the two routes disagree. Writes one CSV row per design and figure.
options(survey.lonely.psu = "fail")  # a stratum with one ballot is an error, as in the platform
suppressPackageStartupMessages(library(survey))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) stop("usage: Rscript check.R DATA_DIR OUT.csv")
ballots <- read.csv(file.path(args[1], "ballots.csv"), stringsAsFactors = FALSE)
instrument <- read.csv(file.path(args[1], "instrument.csv"), stringsAsFactors = FALSE)
items <- instrument$item
factors <- split(items, factor(instrument$factor, levels = unique(instrument$factor)))

for (i in items) {
  ballots[[paste0("y_", i)]] <- as.integer(!is.na(ballots[[i]]) & ballots[[i]] >= 4)
  ballots[[paste0("x_", i)]] <- as.integer(!is.na(ballots[[i]]))
}
pool <- function(term, its) {
  ballots[[paste0("y_", term)]] <<- rowSums(ballots[paste0("y_", its)])
  ballots[[paste0("x_", term)]] <<- rowSums(ballots[paste0("x_", its)])
}
for (f in names(factors)) pool(f, factors[[f]])
pool("all", items)

# figure name -> terms and coefficients
figures <- list()
for (i in items) figures[[paste0("item:", i)]] <- list(terms = i, coefs = 1)
for (f in names(factors)) {
  its <- factors[[f]]
  figures[[paste0("factor:", f, ":pooled")]] <- list(terms = f, coefs = 1)
  figures[[paste0("factor:", f, ":mean_items")]] <- list(terms = its, coefs = rep(1 / length(its), length(its)))
}
figures[["overall:mean_factors"]] <- list(
  terms = items,
  coefs = unlist(lapply(factors, function(its) rep(1 / (length(factors) * length(its)), length(its))), use.names = FALSE)
)
figures[["overall:pooled"]] <- list(terms = "all", coefs = 1)

designs <- list(
  with_fpc = svydesign(ids = ~1, strata = ~stratum, weights = ~weight, fpc = ~fpc, data = ballots),
  without_fpc = svydesign(ids = ~1, strata = ~stratum, weights = ~weight, data = ballots)
)
frame_size <- sum(tapply(ballots$fpc, ballots$stratum, function(v) v[1]))

estimate <- function(design, figure, with_fpc) {
  y <- paste0("y_", figure$terms)
  x <- paste0("x_", figure$terms)
  ratios <- svyratio(make.formula(y), make.formula(x), design, covmat = TRUE)
  theta <- svycontrast(ratios, setNames(figure$coefs, paste0(y, "/", x)))

  totals <- svytotal(make.formula(c(y, x)), design, influence = TRUE)
  expr <- parse(text = paste(sprintf("%.17g * %s / %s", figure$coefs, y, x), collapse = " + "))[[1]]
  delta <- svycontrast(totals, expr)
  stopifnot(
    isTRUE(all.equal(as.numeric(coef(theta)), as.numeric(coef(delta)), tolerance = 1e-12)),
    isTRUE(all.equal(as.numeric(SE(theta)), as.numeric(SE(delta)), tolerance = 1e-10))
  )

  # the linearised variable: influence of the estimate = weight * z
  z <- as.vector(attr(delta, "influence")) / weights(design)
  withz <- update(design, z_ = z)
  # survey's own design effect of the estimator, as svyratio(deff = ) computes it for one ratio:
  # the design variance over the SRS variance of all sampled rows; deff = TRUE is SRS without
  # replacement, "replace" with replacement.
  mode <- if (with_fpc) TRUE else "replace"
  deff_r <- unname(deff(svytotal(~z_, withz, deff = mode)))
  if (length(y) == 1) {
    stopifnot(isTRUE(all.equal(deff_r, unname(deff(svyratio(make.formula(y), make.formula(x), design, deff = mode))))))
  }
  # the platform's definition: SRS of the ballots answering the figure (n_d), within the domain
  answering <- rowSums(ballots[x]) > 0
  n_d <- sum(answering)
  spread <- unname(coef(svyvar(~z_, subset(withz, answering))))
  v_srs <- sum(weights(design)[answering])^2 / n_d * spread
  if (with_fpc) v_srs <- v_srs * (1 - nrow(ballots) / frame_size)
  c(
    estimate = unname(coef(theta)), se = unname(SE(theta)), deff = unname(SE(theta))^2 / v_srs,
    deff_r = deff_r, n = n_d, rows = nrow(ballots)
  )
}

rows <- list()
for (d in names(designs)) {
  for (name in names(figures)) {
    values <- estimate(designs[[d]], figures[[name]], d == "with_fpc")
    rows[[length(rows) + 1]] <- c(design = d, figure = name, sprintf("%.17g", values))
    names(rows[[length(rows)]]) <- c("design", "figure", names(values))
  }
}
write.csv(do.call(rbind, rows), args[2], row.names = FALSE, quote = FALSE)
cat("wrote", args[2], "\n")
