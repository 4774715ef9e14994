"""The review-sentiment pipeline: ingest → data bias → feature store → prepare (read back from
Feast) → train → evaluate, model bias, SHAP → (accuracy gate) → register.

SageMaker Pipelines' processing → training → evaluation → ConditionStep → RegisterModel, on
Kubeflow Pipelines. Wiring only: all logic is in the components and the sagestack library.
"""

from kfp import dsl

from components.sentiment import (
    evaluate_model,
    explain_model,
    feature_store,
    ingest_data,
    posttraining_bias,
    prepare_data,
    pretraining_bias,
    record_rejection,
    register_model,
    train_fasttext,
)

PIPELINE_NAME = "sagestack-sentiment"


@dsl.pipeline(name=PIPELINE_NAME, description="Review sentiment: data → fastText → evaluation → gated registration")
def sentiment_pipeline(
    data_path: str = "",
    data_sha256: str = "",
    home: str = "",
    tracking_uri: str = "",
    model_name: str = "reviews-sentiment-fasttext",
    min_accuracy: float = 0.55,
    auto_approve: bool = False,
    seed: int = 42,
    epochs: int = 10,
    learning_rate: float = 0.1,
    min_count: int = 1,
    vector_dim: int = 50,
    word_ngrams: int = 1,
    facet: str = "product_category",
    bias_fail_on: str = "",
    explain_samples: int = 10,
):
    ingest = ingest_data(data_path=data_path, data_sha256=data_sha256, home=home, tracking_uri=tracking_uri)
    data_bias = pretraining_bias(reviews=ingest.outputs["reviews"], facet=facet, fail_on=bias_fail_on)
    features = feature_store(reviews=ingest.outputs["reviews"], home=home, tracking_uri=tracking_uri).after(
        data_bias  # a failed bias gate stops the pipeline before features and training
    )
    # Training reads its data back from the feature store: what serving reads, by construction.
    prepare = prepare_data(features=features.outputs["features"], home=home, tracking_uri=tracking_uri)
    train = train_fasttext(
        prepared=prepare.outputs["prepared"], epochs=epochs, learning_rate=learning_rate, min_count=min_count,
        vector_dim=vector_dim, word_ngrams=word_ngrams, seed=seed,
    )
    evaluate = evaluate_model(prepared=prepare.outputs["prepared"], model=train.outputs["model"])
    model_bias = posttraining_bias(
        prepared=prepare.outputs["prepared"], model=train.outputs["model"], facet=facet, fail_on=bias_fail_on
    )
    explain = explain_model(prepared=prepare.outputs["prepared"], model=train.outputs["model"], samples=explain_samples)
    with dsl.If(evaluate.outputs["Output"] >= min_accuracy, name="accuracy-met"):
        register_model(
            reviews=ingest.outputs["reviews"], features=features.outputs["features"],
            prepared=prepare.outputs["prepared"], model=train.outputs["model"], report=evaluate.outputs["report"],
            evaluation=evaluate.outputs["evaluation"], data_bias=data_bias.outputs["report"],
            model_bias=model_bias.outputs["report"], explanations=explain.outputs["report"], home=home,
            tracking_uri=tracking_uri, model_name=model_name, auto_approve=auto_approve,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        )
    with dsl.Else(name="accuracy-missed"):
        record_rejection(
            reviews=ingest.outputs["reviews"], model=train.outputs["model"], test_accuracy=evaluate.outputs["Output"],
            min_accuracy=min_accuracy, home=home, tracking_uri=tracking_uri,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        )
