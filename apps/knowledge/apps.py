from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class KnowledgeConfig(AppConfig):
    name = "apps.knowledge"
    label = "knowledge"
    verbose_name = _("Knowledge base")

    def ready(self) -> None:
        from apps.accounts.roles import KNOWLEDGE_EDITOR, SUPPORT_MANAGER, grant_model_permissions
        from apps.conversations.hooks import after_analysis_register
        from apps.knowledge.autoreply import conversation_autoreply

        after_analysis_register(conversation_autoreply)

        editable = ("document", "article", "category")
        grant_model_permissions(
            KNOWLEDGE_EDITOR,
            *(f"knowledge.{action}_{model}" for model in editable for action in ("add", "change", "delete", "view")),
            "knowledge.view_articleversion",
            "knowledge.view_knowledgegap",
            "knowledge.change_knowledgegap",
        )
        grant_model_permissions(
            SUPPORT_MANAGER,
            "knowledge.view_document",
            "knowledge.view_article",
            "knowledge.view_knowledgegap",
        )
