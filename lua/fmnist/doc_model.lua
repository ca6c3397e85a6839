-- Help text of the models (lua/l_model.c): see lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Models", 40, [[
Three models — logistic regression, a multilayer perceptron and a convolutional network — built,
trained and run in C on all cores, driven like Keras: fit, evaluate, predict, save. Training is
deterministic for a given seed and thread count.]])

doc {
  name = "fm.LogReg",
  sig = "fm.LogReg([opts]) -> Model",
  text = [[
Logistic regression: one dense layer from the 784 pixels to the ten classes, softmax, starting
from zero weights (so the weight maps show what was learnt). Trains by default for 10 epochs,
batch 64, Adam 3e-3 with a cosine decay (84.9% on the test set).]],
  options = {
    { "l2", "L2 penalty on the weights (weight decay; default 0)" },
    { "seed", "accepted for symmetry with the others; nothing in LogReg is random" },
  },
  example = [[
local m = fm.LogReg{l2 = 1e-4}
print(m.kind, m.params)   --> LogReg 7850
]],
  see = { "Model", "Model:fit" },
}

doc {
  name = "fm.MLP",
  sig = "fm.MLP([opts]) -> Model",
  text = [[
A multilayer perceptron: dense layers of the given sizes with ReLU (and dropout), then ten
outputs. By default 784-256-128-10 with dropout 0.2, trained for 30 epochs, batch 64, Adam 1e-3,
cosine decay (90.2%).]],
  options = {
    { "hidden", "the sizes of the hidden layers, at most 8 (default {256, 128})" },
    { "dropout", "the dropout rate after each hidden layer, in [0, 1) (default 0.2)" },
    { "l2", "L2 penalty on the weights (default 0)" },
    { "seed", "seed of the initial weights (default: from fm.seed's generator)" },
  },
  example = [[
local m = fm.MLP{hidden = {64}, dropout = 0, seed = 1}
print(m.layers, m.params)   --> 3 50890
]],
}

doc {
  name = "fm.CNN",
  sig = "fm.CNN([opts]) -> Model",
  text = [[
A convolutional network. By default the reference net: conv 3x3x32, ReLU, max-pool 2, conv
3x3x64, ReLU, max-pool 2, dense 128, ReLU, dropout 0.5, dense 10 (225,034 parameters), trained for
15 epochs, batch 32, Adam 1e-3, cosine decay (92.1%). opts.layers builds another: a list of
layers as fm.Model takes them ("relu", {"dense", units}, {"conv2d", filters, size, padding =
"same"}, {"maxpool", size}, {"dropout", rate}, "batchnorm", containers such as fm.Residual, ...).]],
  options = {
    { "layers", "the layers, e.g. {{\"conv2d\", 16, 3}, \"relu\", {\"maxpool\", 2}, \"flatten\", {\"dense\", 10}}" },
    { "kind", "the name the model goes by (default \"CNN\"; at most 15 characters)" },
    { "l2", "L2 penalty on the weights (default 0)" },
    { "seed", "seed of the initial weights" },
  },
  example = [[
print(fm.CNN{seed = 1}.params)   --> 225034
local small = fm.CNN{seed = 1, layers = {{"conv2d", 8, 3}, "relu", {"maxpool", 2}, "flatten", {"dense", 10}}}
print(small.layers)   --> 5
]],
}

doc {
  name = "fm.load_model",
  sig = "fm.load_model(path) -> Model",
  text = [[
Loads a model saved by model:save: its layers, weights, epochs trained and info. The file is
checked (version, sizes, checksum); a damaged or foreign file raises naming the problem, never
runs code.]],
  example = [[
local path = os.tmpname()
fm.MLP{hidden = {16}, seed = 1}:save(path)
local m = fm.load_model(path)
print(m.kind, m.params)   --> MLP 12730
os.remove(path)
]],
  see = { "Model:save" },
}

doc {
  name = "Model",
  class = "fmnist.Model",
  sig = "Model (fmnist.Model)",
  text = [[
A network and its weights, made by fm.LogReg, fm.MLP, fm.CNN or fm.load_model. print(model) says
its kind, layers, parameters and epochs trained.]],
  example = [[
print(fm.LogReg{})   --> fmnist.Model LogReg: 1 layer, 7850 parameters, 0 epochs trained
]],
}

doc {
  name = "Model.kind",
  sig = "model.kind",
  text = [[The kind of model: "LogReg", "MLP" or "CNN".]],
  example = [[
print(fm.CNN{seed = 1}.kind)   --> CNN
]],
}

doc {
  name = "Model.params",
  sig = "model.params",
  text = [[The number of weights and biases.]],
  example = [[
print(fm.LogReg{}.params)   --> 7850
]],
}

doc {
  name = "Model.epochs",
  sig = "model.epochs",
  text = [[How many epochs the model has been trained for, over all calls to fit (kept in saved files).]],
  example = [[
print(fm.LogReg{}.epochs)   --> 0
]],
}

doc {
  name = "Model.layers",
  sig = "model.layers",
  text = [[The number of layers (model:layer(i) describes each).]],
  example = [[
print(fm.CNN{seed = 1}.layers)   --> 11
]],
}

doc {
  name = "Model.info",
  sig = "model.info",
  text = [[
A table of strings kept in the saved file: put what should travel with the model (test accuracy,
seed, notes) in it before model:save; fm.load_model gives it back (values as strings). Keys and
values may not hold '=' or a newline.]],
  example = [[
local m = fm.LogReg{}
m.info.note = "first try"
local path = os.tmpname()
m:save(path)
print(fm.load_model(path).info.note)   --> first try
os.remove(path)
]],
}

doc {
  name = "Model.defaults",
  sig = "model.defaults",
  text = [[
The training settings fit uses when not told otherwise, as a new table with fit's option names:
epochs, batch, lr, optimizer, nesterov (sgd only), schedule, weight_decay, warmup, label_smoothing
and augment ({crop =, flip =, erase =} or false). Each kind has its measured recipe: the three
original models train on plain images with Adam; fm.ResNet and fm.MobileNet with augmentation.]],
  example = [[
local d = fm.CNN{seed = 1}.defaults
print(d.epochs, d.batch, d.lr, d.optimizer, d.schedule)   --> 15 32 0.001 adam cosine
local r = fm.ResNet{seed = 1}.defaults
print(r.optimizer, r.nesterov, r.augment.crop, r.augment.flip)   --> sgd true 2 true
]],
}

doc {
  name = "Model:fit",
  sig = "model:fit(ds [, opts]) -> history",
  text = [[
Trains the model on a dataset, in C on all cores, showing a progress bar on a terminal (one line
per epoch otherwise) on stderr. Returns the history: one record per epoch and lists per measure.
Ctrl-C stops after the current batch: fit returns the history of the complete epochs with
history.interrupted = true, and the model keeps all it learnt. A loss that is no longer finite
stops with an error naming the epoch and batch, the last finite weights kept. The optimizer's
state (momentum, Adam's moments and step count) is kept in the model from one fit to the next,
as Keras does, unless reset = true or another optimizer is asked for. Augmentation changes each
training image afresh every epoch, from (seed, epoch, image) alone, so results do not depend on
the thread count. Unknown options are errors that list the known ones.]],
  options = {
    { "epochs", "passes over the data (default model.defaults.epochs)" },
    { "batch", "images per step (default model.defaults.batch), 1 to 65536" },
    { "lr", "learning rate (default model.defaults.lr; 0.01 for sgd on a model made for adam)" },
    { "optimizer", "\"adam\", \"adamw\" (Adam with decoupled weight decay) or \"sgd\" (default model.defaults.optimizer)" },
    { "momentum", "sgd's momentum (default 0.9)" },
    { "nesterov", "true: Nesterov momentum for sgd (default model.defaults.nesterov)" },
    { "weight_decay", "L2 penalty; with adamw the decoupled decay (default model.defaults.weight_decay: the constructor's l2, or the recipe's)" },
    { "schedule", "\"constant\", \"step\", \"cosine\" or \"onecycle\" (default model.defaults.schedule)" },
    { "warmup", "epochs of linear warm-up from lr / 100 before the schedule (default model.defaults.warmup, the same share of a shorter run; not with onecycle)" },
    { "min_lr", "the cosine schedule's last learning rate (default 0)" },
    { "step_epochs", "the step schedule: epochs between steps (default 5)" },
    { "gamma", "the step schedule: factor at each step (default 0.1)" },
    { "label_smoothing", "in [0, 1): train against targets 1 - s + s/10 and s/10 (default model.defaults.label_smoothing)" },
    { "augment", "{crop = pixels (pad and shift), flip = true (left-right), erase = probability (random erasing)}, or false (default model.defaults.augment)" },
    { "reset", "true: start the optimizer afresh instead of continuing the last fit's (default false)" },
    { "seed", "seed of the batches' order and dropout (default: from fm.seed's generator)" },
    { "validation", "a dataset, or a fraction of ds held out (stratified), scored after each epoch" },
    { "patience", "stop when the validation loss has not improved for this many epochs (default 0: never)" },
    { "restore_best", "with patience: go back to the weights of the best epoch (default true)" },
    { "on_epoch", "function(epoch, record) called after each epoch; returning false stops training" },
    { "verbose", "false or 0: no progress on stderr (default true)" },
    { "threads", "threads to use (default: all, or OMP_NUM_THREADS)" },
    { "shuffle", "false: the same order every epoch (default true)" },
  },
  example = [[
local ds = fm.load("test"):subset(1, 500)
local m = fm.LogReg{}
local h = m:fit(ds, {epochs = 2, validation = 0.2, seed = 1, verbose = false})
print(#h, h[2].epoch, #h.val_loss, m.epochs)   --> 2 2 2 2
]],
  needs = "dataset",
  see = { "history", "Model:evaluate", "Model.defaults" },
}

doc {
  name = "history",
  sig = "history = model:fit(...)",
  text = [[
What fit returns: history[e] is epoch e's record {epoch, loss, accuracy, val_loss, val_accuracy,
lr, seconds}; history.loss, .accuracy, .val_loss, .val_accuracy, .lr and .seconds list each
measure by epoch (for plotting); history.epochs is how many ran; history.stopped says why training ended
early ("early stopping", "on_epoch returned false", "interrupted (Ctrl-C) at epoch 3, batch
120 of 938; ...") and history.best_epoch which epoch's weights were restored;
history.interrupted is true after Ctrl-C.]],
  example = [[
local h = fm.LogReg{}:fit(fm.load("test"):subset(1, 300), {epochs = 2, verbose = false, seed = 1})
print(h.epochs, #h.loss, h[1].lr > 0, h.stopped)   --> 2 2 true nil
]],
  needs = "dataset",
}

doc {
  name = "Model:evaluate",
  sig = "model:evaluate(ds [, opts]) -> result",
  text = [[
Scores the model on a dataset: a result with accuracy, loss, the confusion matrix and the
per-class scores (see Result). opts.threads as for fit.]],
  options = { { "threads", "threads to use" } },
  example = [[
local ds = fm.load("test"):subset(1, 200)
local r = fm.LogReg{}:evaluate(ds)
print(r.n, r.accuracy >= 0)   --> 200 true
]],
  needs = "dataset",
  see = { "Result" },
}

doc {
  name = "Model:predict",
  sig = "model:predict(x [, opts]) -> Tensor or integer",
  text = [[
The predicted class ids (the dataset's 0..9; fm.class_name(id) names one) of a dataset or of a
tensor of images (N x 784, N x 28 x 28) as a tensor; of one image (784 or 28x28) as an integer.]],
  options = { { "threads", "threads to use" } },
  example = [[
local p = fm.LogReg{}:predict(fm.zeros(3, 784))
print(p:numel(), math.type(fm.LogReg{}:predict(fm.zeros(28, 28))))   --> 3 integer
]],
}

doc {
  name = "Model:predict_proba",
  sig = "model:predict_proba(x [, opts]) -> Tensor",
  text = [[The probabilities of the ten classes for each image: N x 10, each row summing to 1.]],
  options = { { "threads", "threads to use" } },
  example = [[
local p = fm.LogReg{}:predict_proba(fm.zeros(2, 784))
print(p:shape()[2], ("%.1f"):format(p[1]:sum()))   --> 10 1.0
]],
}

doc {
  name = "Model:summary",
  sig = "model:summary([{print = false}])",
  text = [[Prints the layers, their output shapes and parameter counts as Keras does; with print = false returns the text.]],
  options = { { "print", "false: return the table as a string instead of printing it" } },
  example = [[
print(fm.LogReg{}:summary{print = false}:match("Total params: [%d,]+"))   --> Total params: 7,850
]],
}

doc {
  name = "Model:weights",
  sig = "model:weights(i) -> weights, biases",
  text = [[
Copies of layer i's weights and biases: a dense layer's are inputs x outputs, a convolution's
kh x kw x in x out. Raises for a layer without weights.]],
  example = [[
local w, b = fm.LogReg{}:weights(1)
print(w:shape()[1], w:shape()[2], b:numel())   --> 784 10 10
]],
}

doc {
  name = "Model:set_weights",
  sig = "model:set_weights(i, w [, b])",
  text = [[Replaces layer i's weights (and biases) with tensors of the same sizes as model:weights(i).]],
  example = [[
local m = fm.LogReg{}
m:set_weights(1, fm.ones(784, 10), fm.zeros(10))
print(m:weights(1):sum())   --> 7840.0
]],
}

doc {
  name = "Model:gradient_wrt_input",
  sig = "model:gradient_wrt_input(x, class) -> Tensor",
  text = [[
The gradient of the class's score with respect to each pixel of the images in x, shaped like x:
what saliency maps are made of. class is one class id for every image or a tensor of one per image.]],
  example = [[
local m = fm.LogReg{}
m:set_weights(1, fm.ones(784, 10))
print(m:gradient_wrt_input(fm.zeros(784), 3):numel())   --> 784
]],
}

doc {
  name = "Model:activations",
  sig = "model:activations(image, i) -> Tensor",
  text = [[
Layer i's output for one image: channels x h x w for convolution and pooling layers (one map per
channel), a vector otherwise.]],
  example = [[
local maps = fm.CNN{seed = 1}:activations(fm.zeros(28, 28), 1)
print(table.concat(maps:shape(), "x"))   --> 32x26x26
]],
}

doc {
  name = "Model:layer",
  sig = "model:layer(i) -> {type, output, params, units, rate}",
  text = [[
Describes layer i: type ("dense", "conv2d", "maxpool", "relu", "dropout", "flatten"), output
{h, w, channels}, params, and units (dense, conv2d) or rate (dropout).]],
  example = [[
local l = fm.CNN{seed = 1}:layer(1)
print(l.type, l.units, l.params)   --> conv2d 32 320
]],
}

doc {
  name = "Model:save",
  sig = "model:save(path) -> path",
  text = [[
Writes the model — layers, weights, epochs trained and model.info — to a versioned, checksummed,
little-endian file, through a temporary file, so that a failed save never leaves half a model.]],
  example = [[
local path = os.tmpname()
fm.LogReg{}:save(path)
print(fm.load_model(path).kind)   --> LogReg
os.remove(path)
]],
}
